"""Model files are data: loading never runs code stored in them."""
import json

import h5py
import numpy as np
import pytest

from tfbet import quantize_configs
from tfbet import safe_loading
from tfbet.compat import keras


def _quantized_model():
  keras.utils.set_random_seed(0)
  inputs = keras.Input((6, 6, 1))
  x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
  x = keras.layers.Flatten()(x)
  outputs = keras.layers.Dense(4)(x)
  return quantize_configs.quantize_model(keras.Model(inputs, outputs), "rquant")


def _save(model, path):
  with quantize_configs.quantize_scope():
    model.save(str(path))
  return str(path)


def _malicious_model(marker):
  """A model whose Lambda layer creates ``marker`` when Keras rebuilds it."""
  touch = eval(f"lambda x: __import__('pathlib').Path({str(marker)!r}).touch() or x")  # noqa
  inputs = keras.Input((4,))
  outputs = keras.layers.Lambda(touch, name="payload")(inputs)
  return keras.Model(inputs, outputs)


def _edit_config(path, edit):
  with h5py.File(path, "r+") as f:
    config = json.loads(f.attrs["model_config"])
    edit(config)
    f.attrs["model_config"] = json.dumps(config)


def test_a_trained_model_loads_with_identical_weights_and_outputs(tmp_path):
  model = _quantized_model()
  path = _save(model, tmp_path / "model.h5")
  loaded = safe_loading.load_model(path)
  for expected, actual in zip(model.get_weights(), loaded.get_weights()):
    np.testing.assert_array_equal(expected, actual)
  x = np.random.default_rng(0).normal(size=(2, 6, 6, 1)).astype(np.float32)
  np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())


def test_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
  marker = tmp_path / "marker"
  path = str(tmp_path / "evil.h5")
  _malicious_model(marker).save(path)
  marker.unlink()  # Building the model in this process ran the payload once.
  # The file really tries: Keras's own loader runs the payload.
  keras.models.load_model(path, compile=False, safe_mode=False)
  assert marker.exists()
  marker.unlink()
  with pytest.raises(safe_loading.UnsafeModelError, match=r"evil\.h5.*'payload'.*'Lambda'"):
    safe_loading.load_model(path)
  assert not marker.exists()


def test_a_tf_op_layer_that_could_write_files_is_refused(tmp_path):
  path = _save(_quantized_model(), tmp_path / "model.h5")

  def add_op(config):
    config["config"]["layers"].append({
        "class_name": "TFOpLambda", "name": "writer",
        "config": {"name": "writer", "function": "io.write_file"}, "inbound_nodes": []})
  _edit_config(path, add_op)
  with pytest.raises(safe_loading.UnsafeModelError, match="'writer'.*'TFOpLambda'"):
    safe_loading.load_model(path)


def test_a_module_outside_keras_tfmot_and_tfbet_is_refused(tmp_path):
  path = _save(_quantized_model(), tmp_path / "model.h5")

  def foreign_module(config):
    wrapped = [layer for layer in config["config"]["layers"]
               if "QuantizeWrapper" in layer["class_name"]][0]
    wrapped["config"]["layer"]["module"] = "os"
  _edit_config(path, foreign_module)
  with pytest.raises(safe_loading.UnsafeModelError, match="module 'os'"):
    safe_loading.load_model(path)


@pytest.mark.parametrize("content, message", [
    (b"not a model", "neither an HDF5 file nor a .keras archive"),
    (b"PK\x03\x04 zip", "cannot read model file"),
    (safe_loading.HDF5_SIGNATURE + b"\0" * 100, "cannot read model file"),
])
def test_files_that_are_not_models_fail_naming_the_file(tmp_path, content, message):
  path = tmp_path / "bad.h5"
  path.write_bytes(content)
  with pytest.raises(safe_loading.UnsafeModelError, match=f"bad.h5.*{message}|{message}.*bad.h5"):
    safe_loading.load_model(str(path))


@pytest.mark.parametrize("config, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ("[" * 100000 + "]" * 100000, "not valid JSON|nested too deeply"),
])
def test_a_damaged_model_config_fails_naming_the_file(tmp_path, config, message):
  path = _save(_quantized_model(), tmp_path / "model.h5")
  with h5py.File(path, "r+") as f:
    f.attrs["model_config"] = config
  with pytest.raises(safe_loading.UnsafeModelError, match=message):
    safe_loading.load_model(path)


def test_a_weights_only_file_and_a_directory_are_refused(tmp_path):
  model = _quantized_model()
  weights = str(tmp_path / "weights.h5")
  model.save_weights(weights)
  with pytest.raises(safe_loading.UnsafeModelError, match="no model_config"):
    safe_loading.load_model(weights)
  with pytest.raises(safe_loading.UnsafeModelError, match="directory"):
    safe_loading.load_model(str(tmp_path))


def _quantize_config_of(config, layer_name):
  """The quantize config of the layer named ``layer_name`` (Keras may have added a "_N")."""
  layer = next(l for l in config["config"]["layers"] if l["name"].startswith(layer_name))
  return layer["config"]["quantize_config"]["config"]


def test_a_quantize_config_lacking_a_field_is_refused_as_written_by_an_older_tfbet(tmp_path):
  path = _save(_quantized_model(), tmp_path / "model.h5")
  # Without the check, the scheme's missing field would silently take its default.
  _edit_config(path, lambda c: _quantize_config_of(c, "quant_dense")["scheme"].pop("rounding"))
  with pytest.raises(safe_loading.UnsafeModelError,
                     match=r"model\.h5' was written by an older tfbet: the quantize config of "
                           r"layer 'quant_dense(_\d+)?' lacks \['scheme\.rounding'\].*Retrain "
                           r"the model with this tfbet \(bin/train\), or re-export it"):
    safe_loading.load_model(path)


def test_quantizer_state_of_another_shape_is_refused_as_probably_an_older_tfbet(tmp_path):
  path = _save(_quantized_model(), tmp_path / "model.h5")
  # An older version that quantized the kernel only: fewer variables than the file holds.
  _edit_config(path, lambda c: _quantize_config_of(c, "quant_dense").update(
      weight_attrs=[["kernel"]]))
  with pytest.raises(safe_loading.UnsafeModelError,
                     match=r"was probably written by an older tfbet: its stored weights do not "
                           r"match.*quant_dense.*Retrain the model"):
    safe_loading.load_model(path)


def test_a_scheme_field_unknown_to_this_version_is_refused_as_written_by_a_newer_tfbet(tmp_path):
  path = _save(_quantized_model(), tmp_path / "model.h5")
  _edit_config(path, lambda c: _quantize_config_of(c, "quant_dense")["scheme"].update(
      future_field=1))
  with pytest.raises(safe_loading.UnsafeModelError,
                     match=r"written by a newer tfbet: the quantization scheme of layer "
                           r"'quant_dense(_\d+)?' has fields \['future_field'\]"):
    safe_loading.load_model(path)


def _fitted_quantized_model():
  model = _quantized_model()
  model.compile(optimizer=keras.optimizers.SGD(0.1),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x = np.random.default_rng(1).normal(size=(8, 6, 6, 1)).astype(np.float32)
  model.fit(x, np.arange(8) % 4, epochs=1, verbose=0)
  return model, x


def _assert_same_model(expected, actual, x):
  assert len(expected.weights) == len(actual.weights)
  for want, got in zip(expected.get_weights(), actual.get_weights()):
    np.testing.assert_array_equal(want, got)
  np.testing.assert_array_equal(expected(x, training=False).numpy(),
                                actual(x, training=False).numpy())


def test_a_keras_archive_of_a_trained_quantized_model_round_trips_bit_for_bit(tmp_path):
  model, x = _fitted_quantized_model()  # called and trained, not only built
  path = _save(model, tmp_path / "model.keras")
  with quantize_configs.quantize_scope():
    _assert_same_model(model, keras.models.load_model(path, compile=False), x)
  _assert_same_model(model, safe_loading.load_model(path), x)


def test_model_checkpoint_keras_files_of_a_quantized_model_load(tmp_path):
  model, x = _fitted_quantized_model()
  pattern = str(tmp_path / "ckpt_{epoch}.keras")
  model.fit(x, np.arange(8) % 4, epochs=2, verbose=0,
            callbacks=[keras.callbacks.ModelCheckpoint(pattern)])
  _assert_same_model(model, safe_loading.load_model(str(tmp_path / "ckpt_2.keras")), x)


def test_a_float_keras_archive_loads_as_data_and_a_lambda_in_one_is_refused(tmp_path):
  keras.utils.set_random_seed(0)
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
  path = _save(model, tmp_path / "float.keras")
  x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
  _assert_same_model(model, safe_loading.load_model(path), x)
  marker = tmp_path / "marker"
  evil = str(tmp_path / "evil.keras")
  _malicious_model(marker).save(evil)
  marker.unlink(missing_ok=True)
  with pytest.raises(safe_loading.UnsafeModelError, match=r"evil\.keras.*'payload'.*'Lambda'"):
    safe_loading.load_model(evil)
  assert not marker.exists()


def test_a_keras_archive_naming_a_foreign_registered_object_is_refused(tmp_path):
  import zipfile  # pylint: disable=g-import-not-at-top
  path = _save(_quantized_model(), tmp_path / "model.keras")
  with zipfile.ZipFile(path) as archive:
    parts = {name: archive.read(name) for name in archive.namelist()}
  config = json.loads(parts["config.json"])
  config["config"]["layers"][1]["registered_name"] = "evil>Payload"
  parts["config.json"] = json.dumps(config)
  with zipfile.ZipFile(path, "w") as archive:
    for name, data in parts.items():
      archive.writestr(name, data)
  with pytest.raises(safe_loading.UnsafeModelError, match="'evil>Payload'"):
    safe_loading.load_model(path)
