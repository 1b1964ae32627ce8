// RunReport -> JSON (DESIGN.md §5).  Field names are the contract with mascot.analysis.
#include "mascot/report.h"

#include <cmath>

#include "mascot/detail/json.h"
#include "mascot/methods.h"

namespace mascot {

std::string RunReport::to_json() const {
  detail::JsonWriter w;
  const TrainConfig& c = config;
  w.begin_object();
  w.kv("format", "mascot-run-report").kv("version", 1).kv("mascot_version", MASCOT_VERSION);
  w.key("config").begin_object();
  w.kv("method", to_string(c.method)).kv("k", c.k).kv("epochs", c.epochs).kv("lr", c.lr).kv("decay", c.decay);
  w.kv("lambda_p", c.lambda_p).kv("lambda_q", c.lambda_q).kv("init_std", c.init_std);
  w.kv("rounding", to_string(c.rounding)).kv("order", to_string(c.order));
  w.kv("user_groups", c.user_groups).kv("item_groups", c.item_groups).kv("period", c.period);
  w.kv("sample_ratio", c.sample_ratio).kv("threshold", c.threshold).kv("warmup", c.warmup);
  w.key("random_fp16");
  if (c.random_fp16 >= 0) w.value(c.random_fp16); else w.null();
  w.kv("grad_stats", c.grad_stats);
  if (method_traits(c.method).competing()) {  // the method parameters of mpt, muppet, afp
    const CompetingParams& p = c.competing;
    w.key("competing").begin_object();
    w.kv("loss_scale", p.loss_scale).kv("dynamic_loss_scale", p.dynamic_loss_scale);
    w.kv("loss_scale_window", p.loss_scale_window);
    w.key("muppet_word_lengths").array(p.muppet_word_lengths);
    w.kv("muppet_resolution", p.muppet_resolution).kv("muppet_patience", p.muppet_patience);
    w.kv("muppet_threshold_alpha", p.muppet_threshold_alpha).kv("muppet_threshold_beta", p.muppet_threshold_beta);
    w.kv("muppet_threshold_decay", p.muppet_threshold_decay).kv("muppet_batch", p.muppet_batch);
    w.kv("afp_low_bits", p.afp_low_bits).kv("afp_high_bits", p.afp_high_bits);
    w.kv("afp_error_threshold", p.afp_error_threshold).kv("afp_alpha", p.afp_alpha);
    w.kv("afp_beta", p.afp_beta).kv("afp_gamma", p.afp_gamma).kv("afp_delta", p.afp_delta);
    w.end_object();
  }
  w.end_object();
  w.kv("device", device).kv("threads", threads).kv("seed", seed);
  w.key("dataset").begin_object();
  w.kv("name", data.name).kv("n_users", data.n_users).kv("n_items", data.n_items);
  w.kv("n_train", data.n_train).kv("n_test", data.n_test).kv("test_dropped", data.test_dropped);
  w.kv("user_groups", data.user_groups).kv("item_groups", data.item_groups);
  w.end_object();
  w.key("epochs").begin_array();
  for (const auto& e : epochs) {
    w.begin_object();
    w.kv("epoch", e.epoch).kv("lr", e.lr).kv("train_seconds", e.train_seconds).kv("eval_seconds", e.eval_seconds);
    w.key("test_rmse");
    if (e.test_rmse >= 0) w.value(e.test_rmse); else w.null();
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
  if (final_test_rmse >= 0) w.value(final_test_rmse); else w.null();
  w.kv("epochs_run", static_cast<int>(epochs.size())).kv("interrupted", interrupted);
  w.end_object();
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
