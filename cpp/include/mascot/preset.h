// Presets: named sets of parameter-table values (mascot/params.h) that a front end applies before
// its own options, so `mascot_train --preset paper --lr 0.05` and `MF(preset="paper", lr=0.05)`
// mean the same thing.  A preset is either built in ("paper": the ICDM 2021 paper's settings,
// written out value by value so that changing the product defaults never changes it) or a JSON
// file, usually written by `mascot tune`:
//
//   {"mascot_preset": 1, "params": {"lr": 0.05, "lambda_p": 0.05, ...},
//    "valid_rmse": 0.8123, "source": "mascot tune --dataset ml100k ...", "tune": {...}}
//
// "params" is required; its names are table rows (not internal ones), each value of its row's
// type (an integer for int / uint64, a number for float / double, true / false, an enum's name,
// an array of integers for a list; null for an option that is off) and within its row's range.
// "valid_rmse" (number or null), "source" (string) and "tune" (an object, free-form metadata) are
// optional; any other key is refused.  Every error is one line naming the file and the field.
// The reader lives here so that mascot_train and Python (_core.read_preset / parse_preset, used by
// mascot.presets) share it.
#pragma once
#include <string>
#include <vector>

#include "mascot/param_table.h"

namespace mascot::params {

/// One value of a preset: its row and the value as to_text() writes it.
struct PresetValue {
  const Param* param;
  std::string text;
};

struct Preset {
  std::string name;  ///< a built-in name, or the file's path
  std::vector<PresetValue> values;
  bool has_valid_rmse = false;
  double valid_rmse = 0;
  std::string source;
};

/// The built-in presets' names ("paper").
std::vector<std::string> preset_names();
/// A built-in preset; InvalidArgument listing the names for another name.
Preset builtin_preset(const std::string& name);
/// Parses a preset file's text; `what` (the file's path) starts every message.
Preset parse_preset(const std::string& json, const std::string& what);
/// A built-in name, else a file path (IoError when it cannot be read).
Preset load_preset(const std::string& name_or_path);
/// Sets every value of the preset in `s` (the values are checked already).
void apply_preset(const Preset& p, Settings* s);

}  // namespace mascot::params
