"""The embedded demo twin: a real photograph animated into a talking clip with synthetic speech.

Everything is made offline from files installed with the project's dependencies:

* the face is ``astronaut.png`` from scikit-image's bundled data (NASA portrait of astronaut
  Eileen Collins, public domain), 512x512;
* speech is formant-synthesised vowel syllables (:mod:`twinflow.demo.speech`), not a voice
  recording;
* the video moves the head with a slow sway and opens the mouth with the loudness of the speech
  (:mod:`twinflow.demo.face_video`), the mouth located by mediapipe's bundled face mesh.
"""
