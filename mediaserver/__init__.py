"""Media plane: the SFU worker (ICE-lite, DTLS-SRTP, RTP/RTCP forwarding)."""
