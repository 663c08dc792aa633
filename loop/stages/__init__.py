"""The stages of one iteration, one module each: sample, verify, rationalize, selection (the
``select`` stage), pairs, train, evaluation (the ``evaluate`` stage). The driver
(``starloop.loop.driver``) holds their order."""
