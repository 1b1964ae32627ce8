// Parameters of the competing methods (mpt, muppet, afp), embedded in TrainConfig.
// (Owned by the competing-methods module; see cpu/competing.h.)
#pragma once

namespace mascot {

struct CompetingParams {
  /// Throws InvalidArgument naming the bad field.
  void validate() const {}
};

}  // namespace mascot
