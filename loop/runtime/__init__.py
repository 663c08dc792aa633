"""The loop's machinery: the driver and its context, samplers and the one sampling path,
child processes and the training launcher, the run directory and its files, prompts, text
utilities and reports. Stages (``starloop.loop.stages``) are built from these."""
