"""Deployment: export the stylizer network (ONNX) and run it with other runtimes (onnxruntime).

See :mod:`photostyle.deploy.onnx`. Needs the ``deploy`` extra (``onnx``, ``onnxruntime``).
"""
