"""Files shipped inside the package: the Llama-3 tokenizer, so `llama3` works offline, and the
sample corpus, so the demo recipes and eval's held-out books work from any folder.

`prolong_data/assets/llama3/` holds Meta's `tokenizer.model`, the same tokenizer as an HF
`tokenizer.json` (both gzipped), `tokenizer_config.json` and the NOTICE the Llama 3 license asks
for (see docs/tokenizers.md). `llama3_folder()` unpacks them once into a cache folder that Hugging
Face's `AutoTokenizer.from_pretrained` loads, and that `prolong_data.tokenization.load_tokenizer("llama3")`
reads.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

LLAMA3_ASSETS = Path(__file__).parent / "llama3"
"""The packaged Llama-3 files, as shipped (gzipped where large)."""

SAMPLE_CORPUS = Path(__file__).parent / "sample_corpus"
"""The sample corpus (`examples/corpus/` of the repository, linked here so that the wheel ships
it): what the demo recipes' `{sample_corpus}` names, and eval's default held-out books."""

_PACKED = ("tokenizer.json.gz", "tokenizer.model.gz")
_PLAIN = ("tokenizer_config.json", "NOTICE.txt")


def default_cache_dir() -> Path:
    """Where unpacked assets go: `$XDG_CACHE_HOME/prolong-data`, else `~/.cache/prolong-data`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prolong-data"


def llama3_folder(cache_dir: str | Path | None = None) -> Path:
    """An HF tokenizer folder with the packaged Llama-3 tokenizer, unpacked on first use.

    The folder holds tokenizer.json, tokenizer.model (Meta's tiktoken ranks), tokenizer_config.json
    (special tokens, chat template) and NOTICE.txt. Its name carries a hash of the packaged files,
    so a changed package never reads a stale copy. Unpacking writes each file under a temporary
    name and renames it, so concurrent processes never see half a file. When `cache_dir` (default
    `default_cache_dir()`) cannot be written, the system's temporary folder is used instead.
    """
    return _llama3_folder(str(cache_dir) if cache_dir is not None else None)


@lru_cache(maxsize=4)
def _llama3_folder(cache_dir: str | None) -> Path:
    digest = _assets_digest()
    candidates = [Path(cache_dir)] if cache_dir is not None else [default_cache_dir()]
    candidates.append(Path(tempfile.gettempdir()) / f"prolong-data-{_user_tag()}")
    last_error: OSError | None = None
    for base in candidates:
        folder = base / f"llama3-{digest[:16]}"
        try:
            _unpack(folder)
            return folder
        except OSError as err:  # read-only home, full disk: try the next place
            last_error = err
    raise OSError(f"cannot unpack the packaged Llama-3 tokenizer into {candidates}: {last_error}")


def _assets_digest() -> str:
    """sha256 over the packaged files' names and bytes."""
    h = hashlib.sha256()
    for name in (*_PACKED, *_PLAIN):
        h.update(name.encode())
        h.update((LLAMA3_ASSETS / name).read_bytes())
    return h.hexdigest()


def _user_tag() -> str:
    try:
        return str(os.getuid())
    except AttributeError:  # no uid on Windows
        return "user"


def _unpack(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*_PACKED, *_PLAIN):
        target = folder / name.removesuffix(".gz")
        if target.is_file():
            continue
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        src = LLAMA3_ASSETS / name
        with open(tmp, "wb") as out:
            if name.endswith(".gz"):
                with gzip.open(src, "rb") as packed:
                    shutil.copyfileobj(packed, out)
            else:
                with open(src, "rb") as plain:
                    shutil.copyfileobj(plain, out)
        os.replace(tmp, target)
