"""A local web page and HTTP API for stylizing photos (``photostyle serve``).

Needs the ``serve`` extra: ``pip install 'photostyle[serve]'`` (Starlette, uvicorn,
python-multipart; httpx for the load check).
"""

from photostyle.serve.app import ServeConfig, StylizerLike, create_app

__all__ = ["ServeConfig", "StylizerLike", "create_app"]
