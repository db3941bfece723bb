"""An HTML template for ``dvc plots show`` that works offline: Vega inlined, nothing fetched.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so on a utility network
without internet the plots page is blank. ``make install`` fetches the same three packages
DVC's renderer names (dvc_render, vega.py) from the npm registry (``npm pack``), and this
module writes a template with their minified builds inlined and no ``{scripts}`` slot (the
slot DVC fills with the CDN tags), then points ``plots.html_template`` at it in
``.dvc/config.local``.

    python -m pipelines.offline_plots .dvc/tmp/npm .dvc/plots/offline.html
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

#: The packages and versions of dvc_render's VegaRenderer.SCRIPTS, with each one's build.
PACKAGES = {
    "vega-5.20.2.tgz": "package/build/vega.min.js",
    "vega-lite-5.2.0.tgz": "package/build/vega-lite.min.js",
    "vega-embed-6.18.2.tgz": "package/build/vega-embed.min.js",
}

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot</title>
    <meta charset="utf-8">
{inline}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def build(tarballs: Path, out: Path) -> Path:
    """Write the template to ``out`` from the npm tarballs in ``tarballs``.

    Raises:
        FileNotFoundError: a tarball or its build file is missing.
    """
    scripts = []
    for name, member in PACKAGES.items():
        with tarfile.open(tarballs / name) as tar:
            source = tar.extractfile(member)
            if source is None:
                raise FileNotFoundError(f"{tarballs / name}: no {member}")
            code = source.read().decode("utf-8")
        if "{plot_divs}" in code or "{refresh_tag}" in code or "</script" in code.lower():
            raise ValueError(f"{name}: its code holds a template slot or a closing script tag")
        scripts.append(f"<script>\n{code}\n</script>")
    page = PAGE.replace("{{", "{").replace("}}", "}")  # the style's braces, before the code
    page = page.replace("{inline}", "\n".join(scripts))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m pipelines.offline_plots TARBALL_DIR OUT.html")
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
