"""`cmake --install` and the CPack .deb lay out binary, unit, sysusers/tmpfiles, example config
and dashboards; the packaged binary runs."""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

BUILD = ROOT / "build"


def test_cmake_install_layout(tmp_path):
    dest = tmp_path / "root"
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(dest / "usr")], check=True,
                   capture_output=True)
    for rel in ["usr/bin/ingestd", "usr/lib/systemd/system/ingestd.service", "usr/lib/sysusers.d/ingestd.conf",
                "usr/lib/tmpfiles.d/ingestd.conf", "usr/share/ingestd/ingestd.example.yaml",
                "usr/share/ingestd/dashboards/ingestd.json", "usr/share/ingestd/dashboards/alerts.yml",
                "usr/share/ingestd/examples/ice/ice.yaml", "usr/share/doc/ingestd/operations.md"]:
        assert (dest / rel).exists(), rel
    out = subprocess.run([str(dest / "usr/bin/ingestd"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip()


@pytest.mark.skipif(not shutil.which("dpkg-deb") or not shutil.which("cpack"), reason="dpkg-deb/cpack not installed")
def test_deb_package_contents_and_metadata(tmp_path):
    out = subprocess.run(["cpack", "-G", "DEB", "-B", str(tmp_path)], cwd=BUILD, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    debs = list(tmp_path.glob("ingestd_*.deb"))
    assert len(debs) == 1
    info = subprocess.run(["dpkg-deb", "-f", str(debs[0])], capture_output=True, text=True).stdout
    assert "Package: ingestd" in info
    assert "librdkafka" in info and "libpqxx" in info  # shlibdeps found the runtime libraries
    contents = subprocess.run(["dpkg-deb", "-c", str(debs[0])], capture_output=True, text=True).stdout
    for rel in ["./usr/bin/ingestd", "./usr/lib/systemd/system/ingestd.service", "./usr/lib/sysusers.d/ingestd.conf",
                "./usr/share/ingestd/ingestd.example.yaml"]:
        assert rel in contents, rel
    control = subprocess.run(["dpkg-deb", "-I", str(debs[0]), "postinst"], capture_output=True, text=True).stdout
    assert "systemd-sysusers" in control
    x = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(x)], check=True)
    assert subprocess.run([str(x / "usr/bin/ingestd"), "--version"], capture_output=True).returncode == 0
