"""What the metadata store accepts in a recorded artifact version, field by field.

The store functions call these checks before they write, so they hold the same for a
local run and for a client of a team server (which runs the same functions on its own
store). A version's ``uri`` is only a label for people and for versions saved before
artifact stores had ids: readers derive the folder from their own artifact store and
the content hash (``mlzen.artifacts.identity``). It must still look like a folder of a
content-addressed store, so nothing recorded suggests otherwise.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from mlzen.errors import ConfigError
from mlzen.names import check_name

MAX_URI_LENGTH = 4096
#: The largest JSON (bytes) of the metadata a materializer extracted from one value.
MAX_METADATA_BYTES = 16 * 1024 * 1024
MAX_SIZE = 2**63 - 1
MAX_MANIFEST_FILES = 100_000
CONTENT_HASH = re.compile(r"[0-9a-f]{64}")
STORE_ID = re.compile(r"[0-9a-f]{32}")
# "package.module:Class" (classes defined in a function carry "<locals>").
_MATERIALIZER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_<][\w.<>]*")
_DATA_TYPE = re.compile(r"[A-Za-z_][\w.<>]*")
_VISUALIZATION_KIND = re.compile(r"[a-z]{1,16}")
_VISUALIZATION_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _refuse(artifact: str, field: str, problem: str) -> ConfigError:
    return ConfigError(
        f"Artifact '{artifact}' cannot be recorded: its {field} {problem}. Save artifacts "
        "with mlzen (save_artifact / a step's outputs), which records valid values.",
        artifact_name=artifact,
        field=field,
    )


def check_folder_uri(artifact: str, uri: object, content_hash: str, field: str = "uri") -> None:
    """``uri`` must end in ``<hash[:2]>/<hash>`` and hold no control character."""
    if not isinstance(uri, str) or not 0 < len(uri) <= MAX_URI_LENGTH:
        raise _refuse(artifact, field, f"must be a string of 1 to {MAX_URI_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in uri):
        raise _refuse(artifact, field, "contains a control character")
    parts = uri.rstrip("/").split("/")
    if len(parts) < 3 or parts[-1] != content_hash or parts[-2] != content_hash[:2]:
        raise _refuse(
            artifact, field, "is not a content-addressed folder (<store>/<hash[:2]>/<hash>)"
        )
    if ".." in parts:
        raise _refuse(artifact, field, "contains '..'")


def check_output(output: Any) -> None:
    """Every field of an ``OutputRecord`` before it is recorded.

    Raises:
        InvalidNameError: A name that cannot be recorded.
        ConfigError: Any other field that is not what mlzen writes; names the field.
    """
    name = check_name("artifact", output.name)
    content_hash = output.content_hash
    if not isinstance(content_hash, str) or not CONTENT_HASH.fullmatch(content_hash):
        raise _refuse(name, "content_hash", "is not a BLAKE3 hex digest (64 hex digits)")
    check_folder_uri(name, output.uri, content_hash)
    store_id = output.artifact_store_id
    if store_id is not None and (not isinstance(store_id, str) or not STORE_ID.fullmatch(store_id)):
        raise _refuse(name, "artifact_store_id", "is not an artifact store id (32 hex digits)")
    if not isinstance(output.materializer, str) or not (
        len(output.materializer) <= 255 and _MATERIALIZER.fullmatch(output.materializer)
    ):
        raise _refuse(name, "materializer", "is not a 'package.module:Class' name")
    if not isinstance(output.data_type, str) or not (
        len(output.data_type) <= 255 and _DATA_TYPE.fullmatch(output.data_type)
    ):
        raise _refuse(name, "data_type", "is not a dotted type path")
    if type(output.size) is not int or not 0 <= output.size <= MAX_SIZE:
        raise _refuse(name, "size", "is not a number of bytes")
    try:
        encoded = json.dumps(dict(output.metadata), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise _refuse(name, "metadata", f"is not JSON ({exc})") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise _refuse(name, "metadata", f"is larger than {MAX_METADATA_BYTES} bytes of JSON")
    seen: set[str] = set()
    for visualization in output.visualizations:
        if not isinstance(visualization, list | tuple) or len(visualization) != 3:
            raise _refuse(name, "visualizations", "are not (name, kind, uri) triples")
        label, kind, uri = visualization
        check_name("visualization", label)
        if label in seen:
            raise _refuse(name, "visualizations", f"name '{label}' twice")
        seen.add(label)
        if not isinstance(kind, str) or not _VISUALIZATION_KIND.fullmatch(kind):
            raise _refuse(name, f"visualization '{label}'", "has no valid kind")
        folder, _, file = uri.rpartition("/") if isinstance(uri, str) else ("", "", "")
        if not _VISUALIZATION_FILE.fullmatch(file):
            raise _refuse(name, f"visualization '{label}'", "does not name a file")
        check_folder_uri(
            name, folder, folder.rpartition("/")[2], field=f"visualization '{label}' uri"
        )
        if not CONTENT_HASH.fullmatch(folder.rpartition("/")[2]):
            raise _refuse(name, f"visualization '{label}' uri", "is not in a content folder")
    if output.files is not None:
        check_files(name, output.files, output.size)


def check_files(artifact: str, files: object, size: int) -> None:
    """A manifest maps relative file paths to sizes that add up to the version's size."""
    if not isinstance(files, dict) or len(files) > MAX_MANIFEST_FILES:
        raise _refuse(artifact, "files", f"is not a mapping of at most {MAX_MANIFEST_FILES} files")
    for path, file_size in files.items():
        parts = path.split("/") if isinstance(path, str) else []
        if (
            not 0 < len(path) <= MAX_URI_LENGTH
            or path.startswith("/")
            or any(part in ("", ".", "..") for part in parts)
            or any(unicodedata.category(c) == "Cc" for c in path)
        ):
            raise _refuse(artifact, "files", f"name a path that is not relative: {path!r}")
        if type(file_size) is not int or file_size < 0:
            raise _refuse(artifact, "files", f"give {path!r} a size that is not a byte count")
    if sum(files.values()) != size:
        raise _refuse(artifact, "files", "have sizes that do not add up to the version's size")
