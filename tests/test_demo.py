"""`digest demo`, the README's first command, run as a user would: a process in an empty folder."""

from __future__ import annotations

import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path


def test_digest_demo_leaves_received_mail_and_a_preview(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "digest", "demo"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    out_dir = tmp_path / "digest-demo"
    emls = sorted((out_dir / "mail").glob("*.eml"))
    assert len(emls) == 3, proc.stdout
    assert str(emls[0]) in proc.stdout and "HTML preview" in proc.stdout
    preview = (out_dir / "preview.html").read_text(encoding="utf-8")
    assert "Russian Politics &amp; Diplomacy" in preview and "Невский вестник" in preview
    recipients = {}
    for path in emls:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        recipients[str(msg["To"])] = text.replace("\r\n", "\n")  # on the wire lines end in CRLF
    editor = recipients["Chief Editor <editor@newsroom.example>"]
    markets = recipients["Markets Desk <markets@newsroom.example>"]
    assert "Sport\n-----" in editor and " adds: " in editor  # a story told by several outlets
    assert "Sport\n-----" not in markets and "Business & Economy\n" in markets
    # Running it again starts afresh and sends again (a demo that does nothing the second time would puzzle).
    again = subprocess.run(
        [sys.executable, "-m", "digest", "demo"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=180
    )
    assert again.returncode == 0 and len(list((out_dir / "mail").glob("*.eml"))) == 3
