"""``python killpoint.py POINT N tfvae-train ARGS...``: runs tfvae-train and SIGKILLs itself at
the N-th (1-based) passage through POINT of one of its write paths, as a power cut or the OOM
killer would. The package is not changed: the kill is wrapped around its writers here.

POINT:
  metrics, config, state, results: inside the atomic write of metrics.csv / config.json /
      run.json / results.json, after the new content is in the temporary file, before the rename;
  backup_state: a training backup's files written, its ``checkpoint`` state file not yet
      (TensorFlow's CheckpointManager records its state twice a save: N counts records);
  best: right after a best checkpoint is written (before the epoch's backup);
  export: the SavedModel written into its temporary folder, not yet swapped in;
  epoch_end: after the N-th epoch's backup, where nothing is half written (the reference).
"""
import contextlib
import os
import signal
import sys

POINT, NTH = sys.argv[1], int(sys.argv[2])
calls = 0


def _passage():
    global calls
    calls += 1
    if calls == NTH:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def main():
    from tensorflow.python.checkpoint import checkpoint_management

    from tfvae import cli, storage
    from tfvae.training import checkpoints
    files = {"metrics": "metrics.csv", "config": "config.json", "state": "run.json",
             "results": "results.json"}
    if POINT in files:
        atomic_file = storage.atomic_file

        @contextlib.contextmanager
        def killed_file(path, *args, **kwargs):
            with atomic_file(path, *args, **kwargs) as f:
                yield f
                if os.path.basename(path) == files[POINT]:
                    f.flush()
                    _passage()
        storage.atomic_file = killed_file
    elif POINT == "backup_state":
        record = checkpoint_management.update_checkpoint_state_internal

        def killed_record(*args, **kwargs):
            _passage()
            return record(*args, **kwargs)
        checkpoint_management.update_checkpoint_state_internal = killed_record
    elif POINT == "best":
        write_best = checkpoints.write_best

        def killed_best(*args, **kwargs):
            prefix = write_best(*args, **kwargs)
            _passage()
            return prefix
        checkpoints.write_best = killed_best
    elif POINT == "export":
        atomic_dir = storage.atomic_dir

        @contextlib.contextmanager
        def killed_dir(path):
            with atomic_dir(path) as tmp:
                yield tmp
                _passage()
        storage.atomic_dir = killed_dir
    elif POINT == "epoch_end":
        on_epoch_end = checkpoints.Backup.on_epoch_end

        def killed_epoch_end(self, epoch, logs=None):
            on_epoch_end(self, epoch, logs)
            _passage()
        checkpoints.Backup.on_epoch_end = killed_epoch_end
    else:
        raise SystemExit(f"killpoint.py: unknown point {POINT!r}")
    cli.train_main(sys.argv[3:])


if __name__ == "__main__":
    main()
