// Method traits: the one table that says, for every training method, how its factors are
// stored, how it computes, how its precision changes, which options and backends it takes and
// how many bytes per factor element an epoch moves.  Every "which storage / which switching /
// which backend" question in the code base is a lookup here (trainer.cc, the backends,
// memory_plan.cc, config.cc's validation, report.cc, and Python's mascot.perf through
// _core.method_traits()); a new method is one row of kMethodTraits (methods.cc) plus its kernels.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/config.h"

namespace mascot {

/// Where a method keeps P and Q during training.
enum class Storage : uint8_t {
  kFp32,        ///< every row FP32
  kFp16,        ///< every row FP16
  kPerGroup,    ///< per group: FP16 rows, a group's rows move to FP32 when it switches (MASCOT family)
  kFp32Master,  ///< FP32 master rows, quantised by the method inside the pass (mpt, muppet, afp)
};

/// The arithmetic of one update.
enum class Arithmetic : uint8_t {
  kFp32,          ///< FP32 in registers (FP16 rows are widened on load, rounded on store)
  kFp16,          ///< every operation rounded to half (method fp16)
  kFp16Products,  ///< FP16 products with a loss scale, FP32 master update (mpt)
  kFixedPoint,    ///< fixed-point quantised dot product and gradients (muppet, afp)
};

/// Who changes the precision during training.
enum class Switching : uint8_t {
  kNone,         ///< never
  kPerGroup,     ///< the driver's g-switching per group (q-error against its baseline)
  kGlobal,       ///< the same machinery with one global group per side (mascot-n2)
  kMethodOwned,  ///< the method's own policy inside the backend (MuPPET's word-length levels, AFP's bit widths)
};

struct MethodTraits {
  Method method;
  const char* name;
  Storage storage;
  Arithmetic arithmetic;
  Switching switching;
  bool uses_groups;          ///< user_groups / item_groups change the result (TrainConfig::uses_groups adds grad_stats)
  bool stochastic_rounding;  ///< rounding=stochastic applies (it has FP16 / fixed-point stores of FP32 results)
  bool random_fp16;          ///< the potential study (TrainConfig::random_fp16) applies
  bool grad_stats;           ///< the gradient statistics study (TrainConfig::grad_stats) applies
  bool cpu, cuda;            ///< backends that implement it
  int dram_bytes;            ///< bytes per factor element an epoch moves (b of the DRAM floor, mascot.perf)

  /// Whether the driver runs g-switching for it (per group or global).
  bool switches_groups() const { return switching == Switching::kPerGroup || switching == Switching::kGlobal; }
  /// Whether it has method parameters of its own (CompetingParams) and per-epoch method state.
  bool competing() const { return storage == Storage::kFp32Master; }
};

/// The row of `m` (every Method has one).
const MethodTraits& method_traits(Method m);
/// Every row, in the order of method_names().
const std::vector<MethodTraits>& all_method_traits();

std::string to_string(Storage s);
std::string to_string(Arithmetic a);
std::string to_string(Switching s);

}  // namespace mascot
