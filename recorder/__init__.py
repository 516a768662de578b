"""Recorder: plain RTP from the SFU's taps into live HLS with DVR, VOD files, per-track files.

Its own process (`python -m recorder serve`, see service.py for the control protocol), so a
slow encoder never slows a meeting and a crash never ends one. It imports only the shared RTP
helpers of `mediaserver.rtp`, never `signaling`.
"""
