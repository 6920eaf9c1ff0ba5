"""The application shell: CLI, the streaming loop, live settings, controls, status, doctor.
May import everything below it (``realtime.core``, ``stages``, ``io``, ``realtime.pipeline``)."""
