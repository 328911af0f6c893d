"""docs/asyncapi.json (generated from the Rust event types by `cargo run -p todo-shared --example
asyncapi`) checked with the official AsyncAPI tools from npm, through `js/asyncapi-check.mjs`:

- `@asyncapi/parser` (`new Parser().parse(text)`: the AsyncAPI 3.0 JSON Schema and the parser's
  Spectral ruleset) reports no error, and the parsed document has every message of
  components.messages and the three channels; a copy with a broken payload schema is rejected,
  so the check can fail;
- the AsyncAPI generator (2.x as a library: 3.x wants Node >= 24.11) renders it with
  `@asyncapi/html-template` (single file), and Chromium (Debian's `chromium`, driven headless by
  puppeteer-core: no browser download) loads the page: its scripts run without an error, React
  hydrates it, and every message name is on the page.

Environment: `TODO_CHROMIUM` (a Chromium binary; default: `chromium` on PATH, else Debian's
`chromium` package installed with scripts/lib.sh's `need_apt_packages`, which needs root or sudo:
without them the browser test is skipped, saying why). No server and no database.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nodeclients import REPO, Node, Run

# The first test of a session may run `npm ci` (scripts/node.sh) and the browser test may
# install Chromium with apt.
pytestmark = pytest.mark.timeout(600)

SPEC = REPO / "docs" / "asyncapi.json"
CHANNELS = {"tasks", "notifications", "deadletter"}
MESSAGE_COUNT = 8


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text())


def check(node: Node, *args: str, timeout: float = 120) -> Run:
    run = node.script("asyncapi-check.mjs", *args, timeout=timeout)
    assert run.returncode == 0, run.describe()
    return run


def validate(node: Node, path: Path) -> dict[str, Any]:
    return check(node, "validate", str(path)).json()


def describe(diagnostics: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {d['severity']}: {d['code']} at {d['path'] or '/'}: {d['message']}" for d in diagnostics)


# --- the parser ---------------------------------------------------------------------------------


def test_parser_accepts_the_document(node: Node, spec: dict[str, Any]) -> None:
    out = validate(node, SPEC)
    errors = [d for d in out["diagnostics"] if d["severity"] == "error"]
    others = [d for d in out["diagnostics"] if d["severity"] != "error"]
    assert not errors, (
        f"@asyncapi/parser reports errors in {SPEC}:\n{describe(errors)}\n"
        f"warnings and other diagnostics:\n{describe(others) or '  (none)'}"
    )
    assert out["version"] == spec["asyncapi"] == "3.0.0", out["version"]

    expected = {key: message.get("name") for key, message in spec["components"]["messages"].items()}
    assert len(expected) == MESSAGE_COUNT, sorted(expected)
    parsed = {m["id"]: m["name"] for m in out["messages"]}
    assert parsed == expected, f"parsed messages {parsed}\n!= components.messages {expected}"
    assert all(name and name.startswith("com.todo.") for name in parsed.values()), parsed

    channels = {c["id"]: c["address"] for c in out["channels"]}
    assert set(channels) == set(spec["channels"]) == CHANNELS, channels
    assert all(channels[c] == spec["channels"][c]["address"] for c in CHANNELS), channels


def test_parser_rejects_a_broken_copy(node: Node, spec: dict[str, Any], tmp_path: Path) -> None:
    """The check can fail: a payload schema whose `type` is a number is an error."""
    broken = copy.deepcopy(spec)
    key = "taskCreated" if "taskCreated" in broken["components"]["messages"] else next(iter(broken["components"]["messages"]))
    broken["components"]["messages"][key]["payload"]["type"] = 42
    path = tmp_path / "asyncapi-broken.json"
    path.write_text(json.dumps(broken, indent=2))

    out = validate(node, path)
    errors = [d for d in out["diagnostics"] if d["severity"] == "error"]
    assert errors, f"the parser accepted a payload with \"type\": 42:\n{describe(out['diagnostics'])}"
    where = f"components.messages.{key}.payload"
    assert any(d["path"].startswith(where) for d in errors), f"no error at {where}:\n{describe(errors)}"


# --- the HTML page in a browser -----------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """A headless-capable Chromium: TODO_CHROMIUM, `chromium` on PATH, or Debian's package."""
    chosen = os.environ.get("TODO_CHROMIUM")
    if chosen:
        if not (Path(chosen).is_file() and os.access(chosen, os.X_OK)):
            pytest.fail(f"TODO_CHROMIUM={chosen} is not an executable file")
        return chosen
    found = shutil.which("chromium")
    if found:
        return found
    out = subprocess.run(
        ["bash", "-c", 'source "$1/scripts/lib.sh" && need_apt_packages chromium', "bash", str(REPO)],
        capture_output=True,
        text=True,
        timeout=540,
        stdin=subprocess.DEVNULL,
    )
    found = shutil.which("chromium")
    if out.returncode != 0 or not found:
        pytest.skip(
            "no Chromium: `chromium` is not on PATH, TODO_CHROMIUM is unset, and installing "
            f"Debian's chromium package failed (exit {out.returncode}):\n{out.stderr[-2000:]}"
        )
    return found


def test_html_page_renders_every_message_in_chromium(
    node: Node, spec: dict[str, Any], chromium: str, tmp_path: Path
) -> None:
    out_dir = tmp_path / "html"
    rendered = check(node, "render", str(SPEC), str(out_dir), timeout=300).json()
    html = Path(rendered["html"])
    assert html.is_file() and rendered["bytes"] > 0, rendered

    run = check(node, "browse", str(html), chromium, timeout=180)
    page = run.json()
    text = page["text"]
    assert not page["errors"], f"the page reported errors in {page['browser']}:\n" + "\n".join(page["errors"])
    assert page["standalone"], f"window.AsyncApiStandalone is missing: the page's script did not run\n{run.describe()}"
    assert page["hydrated"], f"React did not hydrate #root\n{run.describe()}"
    assert spec["info"]["title"] in page["title"], page["title"]

    names = [m["name"] for m in spec["components"]["messages"].values()]
    assert len(names) == MESSAGE_COUNT, names
    missing = [name for name in names if name not in text]
    assert not missing, f"not on the rendered page: {missing}\n--- #root text ---\n{text[:4000]}"
    # Each channel appears by name in the operations (e.g. "RECEIVE tasks").
    missing = sorted(c for c in CHANNELS if c not in text)
    assert not missing, f"channels not on the rendered page: {missing}"
