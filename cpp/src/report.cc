// RunReport -> JSON.  Field names are the contract with mascot.analysis; those of "config" are
// the parameter table's (mascot/params.h).
#include "mascot/report.h"

#include <cmath>

#include "mascot/detail/json.h"
#include "mascot/param_table.h"

namespace mascot {

std::string RunReport::to_json() const {
  detail::JsonWriter w;
  w.begin_object();
  w.kv("format", "mascot-run-report").kv("version", 1).kv("mascot_version", MASCOT_VERSION);
  w.key("config");
  params::write_config_json(w, config);  // the table of mascot/params.h
  w.kv("device", device).kv("threads", threads).kv("seed", seed);
  w.key("dataset").begin_object();
  w.kv("name", data.name).kv("n_users", data.n_users).kv("n_items", data.n_items);
  w.kv("n_train", data.n_train).kv("n_test", data.n_test).kv("test_dropped", data.test_dropped);
  w.kv("user_groups", data.user_groups).kv("item_groups", data.item_groups);
  // the validation keys only where the run had a hold-out (the reports of runs without one are
  // unchanged)
  const bool valid = config.valid_fraction > 0;
  if (valid) w.kv("n_valid", data.n_valid).kv("valid_dropped", data.valid_dropped);
  w.end_object();
  w.key("epochs").begin_array();
  for (const auto& e : epochs) {
    w.begin_object();
    w.kv("epoch", e.epoch).kv("lr", e.lr).kv("train_seconds", e.train_seconds).kv("eval_seconds", e.eval_seconds);
    w.key("test_rmse");
    if (e.test_rmse >= 0)
      w.value(e.test_rmse);
    else
      w.null();
    if (valid) {
      w.key("valid_rmse");
      if (e.valid_rmse >= 0)
        w.value(e.valid_rmse);
      else
        w.null();
    }
    w.kv("fp32_user_groups", e.fp32_user_groups).kv("fp32_item_groups", e.fp32_item_groups);
    if (!e.method_json.empty()) w.key("method").raw(e.method_json);
    if (e.measured) {
      w.key("user_qerror").array(e.user_qerror);
      w.key("item_qerror").array(e.item_qerror);
    }
    if (!e.user_grad_norm.empty()) {
      w.key("user_grad_norm").array(e.user_grad_norm);
      w.key("item_grad_norm").array(e.item_grad_norm);
    }
    w.end_object();
  }
  w.end_array();
  w.key("switches").begin_array();
  for (const auto& s : switches) {
    w.begin_object().kv("side", s.side == 'u' ? "user" : "item").kv("group", s.group).kv("epoch", s.epoch).end_object();
  }
  w.end_array();
  w.key("totals").begin_object();
  w.kv("train_seconds", total_train_seconds).kv("eval_seconds", total_eval_seconds);
  w.kv("setup_seconds", setup_seconds).kv("updates_per_second", updates_per_second);
  w.key("final_test_rmse");
  if (final_test_rmse >= 0)
    w.value(final_test_rmse);
  else
    w.null();
  if (valid) {
    w.key("final_valid_rmse");
    if (final_valid_rmse >= 0)
      w.value(final_valid_rmse);
    else
      w.null();
  }
  w.kv("epochs_run", static_cast<int>(epochs.size())).kv("interrupted", interrupted);
  if (config.early_stop > 0 || valid) {
    w.kv("monitor", monitor).kv("best_epoch", best_epoch);
    w.key("best_rmse");
    if (best_rmse >= 0)
      w.value(best_rmse);
    else
      w.null();
    w.kv("stopped_early", stopped_early);
  }
  w.end_object();
  // the guard's warnings, in epoch order (only when there were any)
  bool any = false;
  for (const auto& e : epochs) any = any || !e.rises.empty();
  if (any) {
    w.key("warnings").begin_array();
    for (const auto& e : epochs)
      for (const RmseRise& x : e.rises)
        w.begin_object()
            .kv("set", x.set)
            .kv("epoch", x.epoch)
            .kv("best_epoch", x.best_epoch)
            .kv("best", x.best)
            .kv("now", x.now)
            .end_object();
    w.end_array();
  }
  w.end_object();
  return w.str();
}

std::string model_metadata_json(int64_t n_users, int64_t n_items, int k, const RunReport& report, double train_mean) {
  detail::JsonWriter w;
  w.begin_object();
  w.kv("format", "mascot-model").kv("version", 1).kv("mascot_version", MASCOT_VERSION);
  w.kv("n_users", n_users).kv("n_items", n_items).kv("k", k).kv("method", to_string(report.config.method));
  w.kv("id_order", "original");
  if (!std::isnan(train_mean)) w.kv("train_mean", train_mean);
  w.key("report").raw(report.to_json());
  w.end_object();
  return w.str();
}

}  // namespace mascot
