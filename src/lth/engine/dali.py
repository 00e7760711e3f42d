"""Decoding streamed image batches with NVIDIA DALI (``--decoder dali``; ``pip install 'lth[dali]'``).

The GPU path of :class:`lth.engine.stream.StreamBatches`: DALI decodes JPEGs with nvJPEG (its ``mixed`` decoder:
Huffman decoding on the CPU, the rest on the GPU) when training on CUDA, and with its own CPU threads
(libjpeg-turbo) otherwise, so the same code runs, and is tested, on a machine without a GPU.

The augmentation is lth's, not DALI's: each example's :class:`~lth.data.images.Geometry` (crop box, pad offset,
flip) is drawn in Python from the example's seed exactly as the Pillow path draws it (from the image's size, read
from its header), and DALI applies it: decode only the box and the pixels around it as far as the resize filter
reaches (``decoders.image_slice``, a region-of-interest decode), resize exactly the box (fractional corners
included) to SxS (linear, antialiased), take the padded window, flip. So the data order and every draw are the
Pillow path's, a run resumed in the middle of an epoch reads what the uninterrupted run read, and only the pixel
arithmetic differs: on the CPU both decode with libjpeg-turbo and the images agree within one level of 255
(tests/engine/test_dali.py); nvJPEG on a GPU rounds its own way. A run records which decoder it used.

Batches are decoded one ahead: :meth:`DaliDecoder.submit` hands DALI the files of the next batch and returns at
once; :meth:`DaliDecoder.take` waits for it, so decoding overlaps the training step.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lth.data.images import FileImages
from lth.errors import UserError, ref


def available() -> bool:
    """Whether NVIDIA DALI can be imported here."""
    try:
        import nvidia.dali  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or installed for another CUDA
        return False
    return True


def require() -> None:
    """UserError naming the ``decoder`` option when DALI is not installed."""
    if not available():
        raise UserError(f"{ref('decoder')}: bad value 'dali' (NVIDIA DALI is not installed); allowed: pillow, auto, "
                        "or dali after pip install 'lth[dali]'", value="dali")


def _header(data: bytes, path: str) -> tuple[int, int]:
    """(width, height) from an image file's header (Pillow reads the header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UserError(f"image file {path}: cannot be decoded ({str(e)[:120]}); allowed: a readable JPEG, PNG, BMP, "
                        "TIFF or WebP image (delete or replace the file)") from None


class DaliDecoder:
    """A DALI pipeline that turns ``batch`` (index, seed) items of ``images`` into uint8 ``[batch, 3, S, S]`` on
    ``device`` (seed None: the evaluation transform). ``threads``: DALI's CPU threads (and the threads reading
    files)."""

    def __init__(self, images: FileImages, batch: int, device: torch.device, threads: int = 2) -> None:
        require()
        from nvidia.dali import fn, pipeline_def, types

        self.images, self.batch, self.device = images, batch, device
        self.size = images.size
        cuda = device.type == "cuda"
        self._reader = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="lth-dali-read")
        self._pending = False

        @pipeline_def(batch_size=batch, num_threads=max(1, threads), prefetch_queue_depth=1,
                      device_id=(device.index or 0) if cuda else None, seed=0)
        def pipeline() -> Any:
            files = fn.external_source(name="files", dtype=types.UINT8, ndim=1)
            anchor = fn.external_source(name="anchor", dtype=types.INT32, ndim=1)
            shape = fn.external_source(name="shape", dtype=types.INT32, ndim=1)
            offset = fn.external_source(name="offset", dtype=types.INT32, ndim=1)
            flip = fn.external_source(name="flip", dtype=types.INT32, ndim=0)
            roi_start = fn.external_source(name="roi_start", dtype=types.FLOAT, ndim=1)
            roi_end = fn.external_source(name="roi_end", dtype=types.FLOAT, ndim=1)
            # every per-sample geometry is a named argument input (on the CPU, as DALI wants those), also on a GPU
            img = fn.decoders.image_slice(files, start=anchor, shape=shape, axis_names="HW",
                                          device="mixed" if cuda else "cpu", output_type=types.RGB,
                                          adjust_orientation=False)
            img = fn.resize(img, size=[self.size, self.size], interp_type=types.INTERP_LINEAR, antialias=True,
                            roi_start=roi_start, roi_end=roi_end, roi_relative=False)
            img = fn.slice(img, start=offset, shape=[self.size, self.size], axis_names="HW",
                           out_of_bounds_policy="pad", fill_values=0)
            img = fn.flip(img, horizontal=flip)
            return fn.transpose(img, perm=[2, 0, 1])

        self.pipe = pipeline()
        self.pipe.build()

    def _item(self, item: tuple[int, int | None]) -> tuple[np.ndarray, tuple[int, int], Any]:
        i, seed = item
        path = str(self.images.paths[i])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UserError(f"image file {path}: cannot be read ({e.strerror})") from None
        w, h = _header(data, path)
        return np.frombuffer(data, dtype=np.uint8), (w, h), self.images.transform(seed is not None).geometry(w, h, seed)

    @property
    def pending(self) -> bool:
        """Whether a submitted batch has not been taken yet."""
        return self._pending

    def submit(self, items: list[tuple[int, int | None]]) -> None:
        """Start decoding the batch ``items`` (``batch`` of them); returns at once."""
        if len(items) != self.batch:
            raise ValueError(f"DaliDecoder: {len(items)} items, the pipeline decodes batches of {self.batch}")
        if self._pending:
            raise RuntimeError("DaliDecoder: take() the batch submitted before submitting another")
        read = list(self._reader.map(self._item, items))
        anchors, shapes, starts, ends, offsets, flips = [], [], [], [], [], []
        for _, (w, h), geo in read:  # decode the pixels around the box (the filter's reach), resize the box exactly
            left, top, right, bottom = geo.box
            reach = math.ceil(max((bottom - top) / self.size, (right - left) / self.size, 1.0)) + 1
            y0, x0 = max(0, math.floor(top) - reach), max(0, math.floor(left) - reach)
            y1, x1 = min(h, math.ceil(bottom) + reach), min(w, math.ceil(right) + reach)
            anchors.append(np.array([y0, x0], dtype=np.int32))
            shapes.append(np.array([max(1, y1 - y0), max(1, x1 - x0)], dtype=np.int32))
            starts.append(np.array([top - y0, left - x0], dtype=np.float32))
            ends.append(np.array([bottom - y0, right - x0], dtype=np.float32))
            offsets.append(np.array(geo.offset or (0, 0), dtype=np.int32))
            flips.append(np.array(int(geo.flip), dtype=np.int32))
        self.pipe.feed_input("files", [d for d, _, _ in read])
        self.pipe.feed_input("anchor", anchors)
        self.pipe.feed_input("shape", shapes)
        self.pipe.feed_input("offset", offsets)
        self.pipe.feed_input("flip", flips)
        self.pipe.feed_input("roi_start", starts)
        self.pipe.feed_input("roi_end", ends)
        self.pipe.schedule_run()
        self._pending = True

    def take(self, out: Tensor | None = None) -> Tensor:
        """The batch submitted last, as uint8 ``[batch, 3, S, S]`` on the device (into ``out`` when given)."""
        from nvidia.dali.plugin.pytorch import feed_ndarray

        if not self._pending:
            raise RuntimeError("DaliDecoder: nothing submitted")
        self._pending = False
        try:
            (images,) = self.pipe.outputs()
        except RuntimeError as e:
            lines = str(e).strip().splitlines()  # DALI's reason follows "encountered:"
            why = next((lines[i + 1] for i, t in enumerate(lines[:-1]) if t.strip() == "encountered:"),
                       lines[0] if lines else type(e).__name__)
            raise UserError(f"a batch of images could not be decoded by DALI ({why.strip()[:200]}); allowed: images "
                            f"DALI decodes (JPEG, PNG, BMP, TIFF, WebP), or {ref('decoder')} pillow") from None
        if out is None:
            out = torch.empty(self.batch, 3, self.size, self.size, dtype=torch.uint8, device=self.device)
        stream = torch.cuda.current_stream(self.device).cuda_stream if self.device.type == "cuda" else None
        feed_ndarray(images.as_tensor(), out, cuda_stream=stream)
        return out

    def close(self) -> None:
        """Stop DALI's threads and the readers."""
        self._reader.shutdown(wait=False)
        self.pipe = None  # type: ignore[assignment]
