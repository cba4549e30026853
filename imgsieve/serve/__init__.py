"""The model server: a local stand-in for TensorFlow Serving that speaks its REST API.

Production runs the official tensorflow/serving image on the same exported model directories;
this server lets everything else run and be tested where that image cannot. Modules:
    server     the process: load, listen, poll for new versions, clean shutdown
    app        the /v1 REST routes and the Prometheus page
    registry   versions on disk and their lifecycle (the "latest" version policy)
    servable   one loaded SavedModel version: signature metadata and calls
    batcher    server-side batching of concurrent requests into model calls
    codec      JSON <-> tensors (row and columnar formats, base64 binary values)
    status     TF Serving's error codes and their HTTP statuses
    metrics    Prometheus metrics
"""
