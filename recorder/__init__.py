"""Recorder: plain RTP taps into HLS with DVR and VOD files (see issue on recording).

Not built yet: the SFU has no taps so far. This package exists so the layout of the design card
holds and the import border test covers it.
"""
