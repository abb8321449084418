"""`rewardflow data pack`: a folder of images + captions (or a CSV/Parquet table) -> shards.

For users without img2dataset. Output is the same layout: `NNNNN.tar` with `{key}.png|jpg`,
`{key}.txt`, `{key}.json` (source path and size), keys numbered in sorted source order so the
same input always packs to the same shards.

Policies:
- Image without a caption: by default an error before anything is written (listing a few);
  `missing_caption="skip"` skips and counts them, `"empty"` packs them with an empty caption.
- Unreadable / corrupt image: skipped and counted, the packing goes on; past `max_bad_fraction`
  of all images (default 1 %) the job stops: that many bad files means a broken source.
- Without `size` the original bytes are kept for PNG/JPEG; other formats become PNG. With
  `size` the short side is resized to it and the centre cropped square (JPEG stays JPEG).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from rewardflow.data.damage import too_many
from rewardflow.data.shards import ShardWriter

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MISSING_CAPTION = ("error", "skip", "empty")


@dataclass
class PackReport:
    written: int = 0
    missing_caption: int = 0
    corrupt: int = 0
    shards: list[Path] = field(default_factory=list)
    corrupt_files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"packed {self.written} images into {len(self.shards)} shard(s); skipped {self.corrupt} "
            f"unreadable image(s) and {self.missing_caption} without caption"
        )


def _folder_items(images: Path) -> list[tuple[Path, str | None]]:
    if not images.is_dir():
        raise FileNotFoundError(f"image folder {images} does not exist")
    items = []
    for p in sorted(images.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."):
            cap = p.with_suffix(".txt")
            items.append((p, cap.read_text(encoding="utf-8").strip() if cap.exists() else None))
    if not items:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {images}")
    return items


def _table_items(table: Path, root: Path | None, path_column: str, caption_column: str):
    if not table.exists():
        raise FileNotFoundError(f"table {table} does not exist")
    if table.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(table)
        columns, rows = t.column_names, t.to_pylist()
    elif table.suffix.lower() in (".csv", ".tsv"):
        with open(table, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if table.suffix.lower() == ".tsv" else ",")
            columns, rows = list(reader.fieldnames or []), list(reader)
    else:
        raise ValueError(f"table {table} must be .csv, .tsv or .parquet")
    for col in (path_column, caption_column):
        if col not in columns:
            raise ValueError(f"table {table} has no column {col!r}; its columns are {columns}")
    base = root if root is not None else table.parent
    items = []
    for r in rows:
        cap = r[caption_column]
        cap = None if cap is None or (isinstance(cap, str) and not cap.strip()) else str(cap).strip()
        items.append((base / str(r[path_column]), cap))
    return items


def _prepare(path: Path, size: int | None) -> tuple[str, bytes, tuple[int, int]]:
    """-> (extension, encoded bytes, (w, h)); raises on unreadable files."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # forces full decoding: truncated files fail here, not during training
        fmt = (img.format or "").upper()
        if size is None and fmt in ("PNG", "JPEG"):
            return ("jpg" if fmt == "JPEG" else "png"), data, img.size
        from rewardflow.data.images import decode_image

        rgb = Image.fromarray(decode_image(data, size)) if size is not None else img.convert("RGB")
        buf = io.BytesIO()
        if fmt == "JPEG":
            rgb.save(buf, format="JPEG", quality=95)
            return "jpg", buf.getvalue(), rgb.size
        rgb.save(buf, format="PNG")
        return "png", buf.getvalue(), rgb.size


def _checked_items(out, root, table, size, missing_caption, path_column, caption_column) -> list:
    """[(image path, caption or None)] to pack, after every check that can fail before writing."""
    if missing_caption not in MISSING_CAPTION:
        raise ValueError(f"missing_caption must be one of {MISSING_CAPTION}, got {missing_caption!r}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if table is not None:
        items = _table_items(Path(table), root, path_column, caption_column)
    elif root is not None:
        items = _folder_items(root)
    else:
        raise ValueError("give an image folder (--images) or a table (--table)")
    if Path(out).exists() and any(Path(out).glob("*.tar")):
        raise ValueError(f"{out} already holds shards; choose an empty output folder")
    lacking = [p for p, c in items if c is None]
    if lacking and missing_caption == "error":
        shown = ", ".join(str(p) for p in lacking[:5])
        raise ValueError(
            f"{len(lacking)} image(s) have no caption (a same-name .txt file or a table entry), "
            f"e.g. {shown}; pass --missing-caption skip or --missing-caption empty"
        )
    return items


def pack(
    out: str | os.PathLike,
    images: str | os.PathLike | None = None,
    table: str | os.PathLike | None = None,
    shard_size: int = 1000,
    size: int | None = None,
    missing_caption: str = "error",
    path_column: str = "path",
    caption_column: str = "caption",
    progress: bool = True,
    max_bad_fraction: float = 0.01,
) -> PackReport:
    root = Path(images) if images is not None else None
    items = _checked_items(out, root, table, size, missing_caption, path_column, caption_column)
    out = Path(out)
    report = PackReport()
    it = items
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(items, desc="packing", unit="img")
    with ShardWriter(out, maxcount=shard_size) as writer:
        for path, caption in it:
            if caption is None:
                if missing_caption == "skip":
                    report.missing_caption += 1
                    continue
                caption = ""
            try:
                ext, data, (w, h) = _prepare(path, size)
            except Exception as exc:  # noqa: BLE001 -- any undecodable file is counted, not fatal
                report.corrupt += 1
                report.corrupt_files.append(str(path))
                if too_many(report.corrupt, len(items), max_bad_fraction):
                    raise ValueError(
                        f"{report.corrupt} images cannot be read (e.g. {report.corrupt_files[:3]}), more than "
                        f"{max_bad_fraction:.0%} of {len(items)}: stopped. Fix or remove them and pack again into an "
                        f"empty folder (the finished shards in {out} are complete), or pass --max-bad-fraction"
                    ) from exc
                continue
            key = f"{report.written:09d}"
            src = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)
            meta = {"key": key, "source": src, "width": w, "height": h, "caption": caption}
            writer.write(key, {ext: data, "txt": caption, "json": json.dumps(meta)})
            report.written += 1
    report.shards = list(writer.written)
    if report.written == 0:
        raise ValueError(f"nothing packed: {report.summary()}")
    return report
