"""Small fixes to the HTML pages of the book, found by its browser test.

- sphinx-thebe adds its inline configuration script once per read of the sources, so a page
  can carry it twice (once with filename None, once with ""); the second copy re-declares `const THEBE_JS_URL` and
  the browser reports a SyntaxError. Each script is kept once, in its first position.
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        # The same script may come with another priority, or a filename of None instead of "".
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", str(js)) or "",
               tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
