"""Safe resumption: one process per output directory, same config, newest intact checkpoint."""
import errno
import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from tfbet.cli import resume
from tfbet.cli import training_job  # noqa: F401  (registers the configurables the configs bind)


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def test_a_second_process_is_kept_out_of_a_locked_output_directory(tmp_path):
  with resume.OutputLock(str(tmp_path)):
    lock = json.loads((tmp_path / resume.LOCK_FILE).read_text())
    assert lock["pid"] == os.getpid()
    with pytest.raises(ValueError, match=rf"lock file .*held by process {os.getpid()}"):
      with resume.OutputLock(str(tmp_path)):
        pass
  assert not (tmp_path / resume.LOCK_FILE).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  (tmp_path / resume.LOCK_FILE).write_text(
      json.dumps({"host": resume.socket.gethostname(), "pid": int(dead.stdout)}))
  with resume.OutputLock(str(tmp_path)):
    assert json.loads((tmp_path / resume.LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_lock_held_on_another_host_is_respected(tmp_path):
  (tmp_path / resume.LOCK_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 1}))
  with pytest.raises(ValueError, match="process 1 on host elsewhere"):
    with resume.OutputLock(str(tmp_path)):
      pass


def test_an_output_dir_without_write_permission_is_refused_naming_it(tmp_path):
  output_dir = tmp_path / "run"
  output_dir.mkdir()
  os.chmod(output_dir, 0o555)
  try:
    try:
      (output_dir / "probe").write_text("")
      pytest.skip("permissions block no writes here (root); see "
                  "test_a_read_only_output_dir_is_refused_in_one_line_before_any_work")
    except PermissionError:
      pass
    started = []
    with pytest.raises(ValueError, match=rf"cannot write the lock file '{output_dir}/.lock' "
                       r"\(Permission denied\): --output_dir must be writable; nothing was done"):
      resume.holds_output_lock(started.append)(str(output_dir))
    assert not started
  finally:
    os.chmod(output_dir, 0o755)


def test_a_full_disk_when_the_lock_is_taken_is_refused_naming_the_lock_file(tmp_path,
                                                                            monkeypatch):
  def full_disk(path, *args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
  monkeypatch.setattr(resume.os, "open", full_disk)
  started = []
  with pytest.raises(ValueError, match=rf"cannot write the lock file '{tmp_path}/.lock' "
                     r"\(No space left on device\): --output_dir must be writable"):
    resume.holds_output_lock(started.append)(str(tmp_path))
  assert not started


def _pretend_checkpoint(output_dir):
  directory = output_dir / resume.CHECKPOINT_DIR
  directory.mkdir(exist_ok=True)
  (directory / "ckpt-1.index").write_bytes(b"")


def test_checkpoints_of_a_different_config_are_refused_naming_the_difference(tmp_path):
  gin.parse_config(["get_scheme.precision = 8", "train.epochs = 3", "train.verbose = 1"])
  resume.check_config(str(tmp_path))
  _pretend_checkpoint(tmp_path)
  gin.clear_config()
  gin.parse_config(["get_scheme.precision = 8", "train.epochs = 3", "train.verbose = 0"])
  resume.check_config(str(tmp_path))  # verbosity does not change what is trained
  for changed in (["get_scheme.precision = 4", "train.epochs = 3"],
                  ["get_scheme.precision = 8", "train.epochs = 2"]):
    gin.clear_config()
    gin.parse_config(changed)
    with pytest.raises(ValueError, match=r"different config(.|\n)*-\w+\.\w+ = \d(.|\n)*"
                                         r"\+\w+\.\w+ = \d(.|\n)*--restart"):
      resume.check_config(str(tmp_path))


def test_checkpoints_without_a_config_record_are_refused(tmp_path):
  _pretend_checkpoint(tmp_path)
  with pytest.raises(ValueError, match="no record of their config"):
    resume.check_config(str(tmp_path))


def test_restart_clears_only_what_a_run_writes(tmp_path):
  _pretend_checkpoint(tmp_path)
  for name in ("model.h5", "result.json", "operative_config.gin", "notes.txt"):
    (tmp_path / name).write_text("x")
  resume.clear_run(str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_a_checkpoint_write_killed_midway_leaves_a_temp_folder_that_the_next_start_removes(
    tmp_path, caplog):
  directory = tmp_path / resume.CHECKPOINT_DIR
  _, _, manager = _manager(directory, np.arange(8, dtype=np.float32))
  manager.save(checkpoint_number=1)
  # What TensorFlow leaves when killed while writing checkpoint 2: its files, still in ckpt-2_temp.
  leftover = directory / "ckpt-2_temp"
  leftover.mkdir()
  for name in os.listdir(directory):
    if name.startswith("ckpt-1."):
      (leftover / name.replace("ckpt-1", "part-00000-of-00001")).write_bytes(
          (directory / name).read_bytes())
  (directory / "notes_temp").mkdir()  # not a checkpoint write: kept
  kept = sorted(os.listdir(directory))
  started = []
  with caplog.at_level("WARNING"):
    resume.holds_output_lock(lambda output_dir: started.append(os.listdir(directory)))(
        str(tmp_path))
  assert started and "ckpt-2_temp" not in started[0]
  assert sorted(os.listdir(directory)) == [name for name in kept if name != "ckpt-2_temp"]
  assert f"removing {leftover}, left by a checkpoint write that was interrupted" in caplog.text
  assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-1")


def _manager(directory, value):
  variable = tf.Variable(value)
  checkpoint = tf.train.Checkpoint(v=variable)
  return variable, checkpoint, tf.train.CheckpointManager(checkpoint, str(directory), 2)


def _damage(prefix):
  data = tf.io.gfile.glob(prefix + ".data-*")[0]
  with open(data, "r+b") as f:
    f.truncate(2)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, caplog):
  variable, _, manager = _manager(tmp_path, np.arange(64, dtype=np.float32))
  first = manager.save(checkpoint_number=1)
  variable.assign(variable + 1.0)
  second = manager.save(checkpoint_number=2)
  _damage(second)
  restored_var, checkpoint, manager = _manager(tmp_path, np.zeros(64, np.float32))
  assert resume.restore_newest_intact(checkpoint, manager) == first
  np.testing.assert_array_equal(restored_var.numpy(), np.arange(64, dtype=np.float32))
  assert "ckpt-2 is damaged" in caplog.text
  _damage(first)
  with pytest.raises(ValueError, match=r"no checkpoint reads back:\n.*ckpt-2.*\n.*ckpt-1"):
    resume.restore_newest_intact(checkpoint, manager)


def test_progress_keeps_the_history_of_the_restored_epochs(tmp_path):
  (tmp_path / resume.CHECKPOINT_DIR).mkdir()
  progress = resume.Progress(str(tmp_path), 0)
  for epoch in range(3):
    progress.on_epoch_begin(epoch)
    progress.on_epoch_end(epoch, {"loss": float(epoch)})
    progress.save()
  resumed = resume.Progress(str(tmp_path), 2)  # e.g. the newest checkpoint was damaged
  assert resumed.history == {"loss": [0.0, 1.0]}
  assert resumed.seconds == pytest.approx(sum(progress.seconds_per_epoch[:2]))


def test_a_complete_checkpoint_missing_from_the_state_file_is_still_found(tmp_path):
  variable, _, manager = _manager(tmp_path, np.arange(8, dtype=np.float32))
  manager.save(checkpoint_number=1)
  variable.assign(variable * 2)
  manager.save(checkpoint_number=2)
  (tmp_path / "checkpoint").unlink()  # killed after the index, before the state file
  restored_var, checkpoint, manager = _manager(tmp_path, np.zeros(8, np.float32))
  assert resume.restore_newest_intact(checkpoint, manager).endswith("ckpt-2")
  np.testing.assert_array_equal(restored_var.numpy(), 2 * np.arange(8, dtype=np.float32))


@pytest.mark.parametrize("record", ['{"history": [', '{"history": {}, "seconds_per_epoch": '
                                    '[1e400, 2.0]}', '{"history": {}, "seconds_per_epoch": [1.0]}'])
def test_a_damaged_progress_record_makes_history_and_time_unknown_not_zero(tmp_path, caplog,
                                                                          record):
  (tmp_path / resume.CHECKPOINT_DIR).mkdir()
  (tmp_path / resume.CHECKPOINT_DIR / resume.PROGRESS_FILE).write_text(record)
  progress = resume.Progress(str(tmp_path), 2)
  assert progress.whole_history() is None and progress.seconds is None
  assert "the history and training time of the run are unknown" in caplog.text
  # Later epochs are recorded from epoch 2 on, and a later resume still knows the run's start
  # is missing (it does not take epochs 2 and 3 for epochs 0 and 1).
  for epoch in (2, 3):
    progress.on_epoch_begin(epoch)
    progress.on_epoch_end(epoch, {"loss": float(epoch)})
    progress.save()
  resumed = resume.Progress(str(tmp_path), 4)
  assert resumed.first_epoch == 2 and resumed.history == {"loss": [2.0, 3.0]}
  assert resumed.whole_history() is None and resumed.seconds is None


def test_checkpoints_recorded_with_old_train_bindings_resume_and_other_values_are_refused(
    tmp_path):
  # What tfbet recorded before the parts were configured on themselves, for a RANDBET run.
  old = ("# Parameters for train:\n"
         "train.epochs = 4\ntrain.method = 'randbet'\ntrain.precision = 8\n"
         "train.rate = 0.05\ntrain.scheme = 'rquant'\ntrain.seed = 1\ntrain.w_max = 0.1\n")
  new = ["train.epochs = 4", "BitErrorTrainer.method = 'randbet'", "get_scheme.precision = 8",
         "BitErrorTrainer.rate = 0.05", "get_scheme.name = 'rquant'", "train.seed = 1",
         "train.weight_constraint = @WeightClip()", "WeightClip.w_max = 0.1"]
  _pretend_checkpoint(tmp_path)
  record = tmp_path / resume.CHECKPOINT_DIR / resume.CONFIG_FILE
  for changed in ("BitErrorTrainer.rate = 0.06", "WeightClip.w_max = 0.05",
                  "get_scheme.precision = 4"):
    record.write_text(old)
    gin.clear_config()
    name = changed.split(" = ")[0]
    gin.parse_config([b for b in new if not b.startswith(name + " ")] + [changed])
    with pytest.raises(ValueError, match="different config"):
      resume.check_config(str(tmp_path))
    assert record.read_text() == old
  gin.clear_config()
  gin.parse_config(new)
  resume.check_config(str(tmp_path))
  assert record.read_text() == resume.recorded_config()  # rewritten in today's names
  resume.check_config(str(tmp_path))
