"""MkDocs hook: the repository's results/ and bench/ files join the site at their own paths, so the
guide's pages show the committed figures and link the commands and records that made them, and
`mkdocs build --strict` fails on a link to a file that does not exist."""

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parent.parent
SHARED = ("results", "bench")  # folders of the repository the pages link into
KINDS = {".png", ".md", ".json", ".jsonl", ".txt", ".log", ".py", ".sh"}


def on_files(files, config):
    for folder in SHARED:
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and path.suffix in KINDS and "__pycache__" not in path.parts:
                relative = path.relative_to(REPO).as_posix()
                if files.get_file_from_path(relative) is None:
                    files.append(File(relative, str(REPO), config["site_dir"], config["use_directory_urls"]))
    return files
