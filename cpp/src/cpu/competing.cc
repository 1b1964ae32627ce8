#include "cpu/competing.h"

#include "mascot/error.h"

namespace mascot::cpu {

std::unique_ptr<CompetingMethod> make_competing_method(const TrainConfig& cfg, int, uint64_t) {
  throw_invalid("method '" + to_string(cfg.method) + "' is not implemented yet");
}

}  // namespace mascot::cpu
