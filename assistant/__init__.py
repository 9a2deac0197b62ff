"""Answers with citations, the command line and the Gradio chat."""
