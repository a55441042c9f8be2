#!/usr/bin/env python3
"""Print the scalars of a TensorBoard log dir as JSON: {tag: [[step, value], ...]}.

Every directory under LOGDIR that holds event files is a run, read with TensorBoard's
EventAccumulator (all the files of a run merged). Tags of a run in a subdirectory are
keyed "run/tag", with run the path relative to LOGDIR; tags directly in LOGDIR keep
their name. Exits 1 when LOGDIR holds no event files.
Needs only the `tensorboard` package (no TensorFlow).
"""
import argparse
import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, io_wrapper


def read_scalars(logdir):
    """Returns {key: [[step, value], ...]} and the number of runs found."""
    scalars = {}
    runs = sorted(io_wrapper.GetLogdirSubdirectories(logdir))
    for run_dir in runs:
        acc = event_accumulator.EventAccumulator(run_dir, size_guidance={"scalars": 0})
        acc.Reload()
        run = os.path.relpath(run_dir, logdir)
        for tag in sorted(acc.Tags()["scalars"]):
            key = tag if run == "." else f"{run}/{tag}"
            scalars[key] = [[e.step, e.value] for e in acc.Scalars(tag)]
    return scalars, len(runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir")
    args = parser.parse_args()
    if not os.path.isdir(args.logdir):
        sys.exit(f"{args.logdir}: not a directory")
    scalars, runs = read_scalars(args.logdir)
    if runs == 0:
        sys.exit(f"{args.logdir}: no event files")
    json.dump(scalars, sys.stdout)
    print()


if __name__ == "__main__":
    main()
