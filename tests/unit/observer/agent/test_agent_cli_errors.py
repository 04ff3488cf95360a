"""`zastava observer run` refuses an unusable authority configuration with a clear error, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_mutual_tls_required_without_a_client_certificate(tmp_path: Path) -> None:
    config = tmp_path / "zastava.yaml"
    config.write_text(
        "zastava:\n"
        "  backend: {baseAddress: 'https://127.0.0.1:9', allowInsecureHttp: false}\n"
        "  runtime: {engine: docker, procfs: /proc, authority: {requireMutualTls: true}}\n"
        f"  publisher: {{bufferDir: '{tmp_path / 'buffer'}'}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "zastava", "observer", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        "zastava.runtime.authority.clientCertPath: requireMutualTls is true but clientCertPath is not set"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
