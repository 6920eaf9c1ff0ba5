"""Frames in and out: sources (cameras, files, folders) and sinks (virtual camera, preview,
files). May import ``realtime.core`` only."""
