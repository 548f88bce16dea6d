"""The object-store layer's process lifetime: cached S3 clients are released before Arrow shuts the AWS SDK down."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A probe registered between pyarrow.fs (which registers Arrow's SDK shutdown) and vlmtune.storage runs after
# storage's exit handler and before Arrow's: what it sees is what Arrow's shutdown would find.
PROBE = textwrap.dedent(
    """
    import atexit, os
    import pyarrow.fs

    def probe():
        from vlmtune import storage
        print("clients alive at SDK shutdown:", storage._endpoint_s3.cache_info().currsize, flush=True)

    atexit.register(probe)
    os.environ.update(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
    from vlmtune import storage

    filesystem, path = storage.resolve("s3://bucket/run")
    assert isinstance(filesystem, pyarrow.fs.S3FileSystem) and path == "bucket/run"
    print("clients cached:", storage._endpoint_s3.cache_info().currsize, flush=True)
    """
)


def test_cached_s3_clients_are_released_before_arrow_finalizes_s3():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["clients cached: 1", "clients alive at SDK shutdown: 0"]
    assert "FinalizeS3" not in done.stderr
