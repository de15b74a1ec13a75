#!/usr/bin/env python3
"""Speech source and scoring for the audio-quality bench.

  audio.py speech DIR          writes DIR/speech.wav (espeak-ng, 48 kHz mono
                               16-bit) and DIR/silence.wav
  audio.py score OUT NAME PATH IMPAIRMENT SPEECH_WAV
                               scores OUT/NAME.* (from run.mjs): aligns the
                               listener's PCM with the source by
                               cross-correlation, wideband PESQ (P.862.2) at
                               16 kHz, mouth-to-ear delay, the getStats
                               ratios; prints one JSON line

Runs in the bench's venv (numpy, scipy, pesq).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from scipy.io import wavfile
from scipy.signal import correlate, resample_poly

RATE = 48000
# Harvard sentences (IEEE 1969 recommended practice; public domain).
TEXT = (
    "The birch canoe slid on the smooth planks. "
    "Glue the sheet to the dark blue background. "
    "It's easy to tell the depth of a well. "
    "These days a chicken leg is a rare dish."
)


def speech(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "espeak.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, TEXT], check=True)
        rate, x = wavfile.read(raw)
    x = x.astype(np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    g = np.gcd(RATE, rate)
    x = resample_poly(x, RATE // g, rate // g)
    x = 0.5 * x / np.max(np.abs(x))
    # A short lead-in and a pause before Chromium loops the file.
    x = np.concatenate([np.zeros(RATE // 4), x, np.zeros(RATE // 2)])
    wavfile.write(os.path.join(out_dir, "speech.wav"), RATE, (x * 32767).astype(np.int16))
    wavfile.write(os.path.join(out_dir, "silence.wav"), RATE, np.zeros(RATE, dtype=np.int16))


def to16k(x: np.ndarray) -> np.ndarray:
    return resample_poly(x.astype(np.float64), 1, 3)


def period_start(capture: np.ndarray, src: np.ndarray) -> tuple[int, float]:
    """Where one whole period of the (looping) source starts in the capture,
    and the normalised correlation there."""
    c = correlate(capture, src, mode="valid", method="fft")
    i = int(np.argmax(c))
    seg = capture[i : i + len(src)]
    norm = np.linalg.norm(seg) * np.linalg.norm(src)
    return i, float(c[i] / norm) if norm else 0.0


def score(out: str, name: str, path: str, impairment: str, speech_wav: str) -> dict:
    from pesq import pesq

    _, src = wavfile.read(speech_wav)
    src16 = to16k(src / 32768.0)
    meta = json.load(open(os.path.join(out, f"{name}.json")))
    lis = to16k(np.fromfile(os.path.join(out, f"{name}.listener.s16"), dtype=np.int16) / 32768.0)
    spk = to16k(np.fromfile(os.path.join(out, f"{name}.speaker.s16"), dtype=np.int16) / 32768.0)
    row: dict = {"path": path, "impairment": impairment}
    if len(lis) < 2 * len(src16) or len(spk) < 2 * len(src16):
        row["error"] = f"recording too short ({len(lis) / 16000:.1f} s for a {len(src16) / 16000:.1f} s source)"
        return row
    ol, cl = period_start(lis, src16)
    os_, cs = period_start(spk, src16)
    deg = lis[ol : ol + len(src16)]
    try:
        row["pesq_wb"] = round(float(pesq(16000, src16, deg, "wb")), 2)
    except Exception as err:  # e.g. no utterance found: nothing heard
        row["pesq_wb"] = 1.0
        row["pesq_error"] = str(err)
    wavfile.write(os.path.join(out, f"{name}.aligned.wav"), 16000, (np.clip(deg, -1, 1) * 32767).astype(np.int16))
    period = len(src16) / 16000
    t_lis = meta["listener"]["t0"] / 1000 + ol / 16000
    t_spk = meta["speaker"]["t0"] / 1000 + os_ / 16000
    row["mouth_to_ear_ms"] = round(((t_lis - t_spk) % period) * 1000)
    row["correlation"] = round(cl, 3)
    s = meta["stats"]
    total = s.get("totalSamplesReceived") or 0
    ratio = lambda k: round(100 * s.get(k, 0) / total, 2) if total else None  # noqa: E731
    row["concealed_pct"] = ratio("concealedSamples")
    row["inserted_pct"] = ratio("insertedSamplesForDeceleration")
    row["removed_pct"] = ratio("removedSamplesForAcceleration")
    emitted = s.get("jitterBufferEmittedCount") or 0
    row["jitter_buffer_ms"] = round(1000 * s["jitterBufferDelay"] / emitted) if emitted else None
    got, lost = s.get("packetsReceived", 0), s.get("packetsLost", 0)
    row["loss_seen_pct"] = round(100 * lost / (got + lost), 1) if got + lost else None
    row["fec_packets"] = s.get("fecPacketsReceived", 0)
    row["codec"] = meta.get("codec")
    row["mode"] = meta.get("mode")
    return row


if __name__ == "__main__":
    if sys.argv[1:2] == ["speech"]:
        speech(sys.argv[2])
    elif sys.argv[1:2] == ["score"]:
        print(json.dumps(score(*sys.argv[2:7])))
    else:
        sys.exit(__doc__)
