// Checkpoint / resume (docs/checkpoint.md).  A checkpoint is a directory:
//   DIR/checkpoint.json                      manifest (flat JSON): format, version, epochs done,
//                                            method, k, device, data fingerprint, and for every
//                                            state file its name, size and checksum
//   DIR/run_state.eNNNNNN.TOKEN.bin          config, context (threads, seed, device), run report so far
//   DIR/driver_state.eNNNNNN.TOKEN.bin       the driver's state (trainer.cc): backend, epochs,
//                                            update count, group precisions, q-error baselines
//   DIR/{cpu,cuda}_state.eNNNNNN.TOKEN.bin   the backend's state: shapes, threads or warps,
//                                            epochs, the competing method's state
//   DIR/{P32,Q32,P16,Q16}.eNNNNNN.TOKEN.npy  factors in their current storage (relabelled order;
//                                            float16 rows stay float16)
// Write protocol ("last complete checkpoint"): new state files (fresh names) are written with
// temp + fsync + rename, then the manifest the same way (the directory is fsync'ed), and only
// then are the files of the previous checkpoint removed; a write that fails (disk full) removes
// the new files it wrote.  A run holds the directory's advisory lock (DIR/.mascot.lock) while it
// writes there (checkpoint_dir_spec).  Killing the writer at any moment
// leaves a manifest whose files are all present and intact.  A reader validates every file's
// size and checksum before using it and fails with one line naming the file.
// Data flow: train_checkpointed / resume_training -> detail::train_run (the driver, trainer.cc)
// with hooks -> after each epoch the hook writes run_state here and calls the driver's save,
// which writes driver_state and has the backend export its sections (detail/backend.h).
#pragma once
#include <cstdint>
#include <string>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/ratings.h"
#include "mascot/report.h"
#include "mascot/trainer.h"

namespace mascot {
namespace detail {
struct DirSpec;
}

/// Cheap fingerprint of a rating set (shape + 64-bit hash of ids and values).
struct DataFingerprint {
  int64_t n_users = 0, n_items = 0, nnz = 0;
  uint64_t hash = 0;
  bool operator==(const DataFingerprint& o) const {
    return n_users == o.n_users && n_items == o.n_items && nnz == o.nnz && hash == o.hash;
  }
};
DataFingerprint fingerprint(const RatingSet& rs);

/// A validated checkpoint (manifest + run state; the large files are checked for size and
/// checksum but not loaded).
struct CheckpointInfo {
  std::string dir;
  int epochs_done = 0;
  int every = 1;  ///< --checkpoint-every of the run that wrote it
  bool deterministic = false;
  TrainConfig config;
  Context context;  ///< the device it trained on (cpu or cuda), threads resolved, seed
  std::string dataset_name;
  /// The rating files the run read (absolute; "" when its data came otherwise: a dataset name,
  /// arrays from Python), so that a resume given no data options reads them again.
  std::string train_path, test_path;
  DataFingerprint train, test;  ///< test.nnz = -1: no test set
  RunReport report;             ///< the report up to epochs_done
};

/// Reads and validates DIR's last complete checkpoint: manifest, run state, presence and size
/// of every file, and (verify_all) every file's checksum, which reads them all.  Throws
/// InvalidArgument / IoError with one line naming the file: missing manifest, truncated or
/// corrupted file, unknown format.  (resume_training verifies checksums while loading.)
CheckpointInfo read_checkpoint(const std::string& dir, bool verify_all = true);

struct CheckpointOptions {
  std::string dir;                    ///< created if missing; must not already hold a checkpoint
  int every = 1;                      ///< write after every `every` epochs, and after the last / on stop
  bool deterministic = false;         ///< recorded (the caller set threads = 1, device cpu)
  std::string train_path, test_path;  ///< the rating files read, recorded for a resume ("": none)
};

/// The checkpoint directory as a live output (detail::OutputSet::live_directory): prepare()
/// creates it when missing and locks it for the run (a second run on it is refused: "in use by
/// process N"); then, for a new run (resume = false), it must hold no checkpoint and nothing but
/// leftovers of a writer that died before its first checkpoint (state files, temps,
/// python_ids.npz), which are removed; anything else refuses it, never deleted.  For a resume it
/// must hold checkpoint.json.  A run that fails before its first checkpoint removes a directory
/// it created.
detail::DirSpec checkpoint_dir_spec(bool resume);

/// Throws when `dir` cannot take a new checkpoint (see checkpoint_dir_spec; also a missing or
/// unwritable parent, a directory in use by another run); leaves nothing behind.
/// train_checkpointed checks this itself; the CLI also checks it before loading data.
void check_checkpoint_target(const std::string& dir);

/// train() that also writes checkpoints.  A stop requested by on_epoch (return false) writes a
/// final checkpoint before returning (report.interrupted = true).
TrainResult train_checkpointed(const Context& ctx, const TrainConfig& cfg, const RatingSet& train,
                               const RatingSet* test, const EpochCallback& on_epoch, const std::string& dataset_name,
                               const CheckpointOptions& opt);

struct ResumeOptions {
  int every = 0;  ///< 0: the checkpoint's own setting
  /// > 0: train to this many epochs in total (at least the epochs done; the learning-rate
  /// schedule continues, so a deterministic run extended from 3 to 6 epochs is the 6-epoch run).
  /// 0: the checkpoint's own count.
  int epochs = 0;
  const TrainConfig* expect = nullptr;  ///< when set: method and k must match (clear error otherwise)
};

/// Continues the run saved in `dir` (config, context and report come from the checkpoint; the
/// epoch count from opt.epochs when set) on
/// the same data (checked against the fingerprint) and the same device, writing further
/// checkpoints into `dir`.  With a deterministic checkpoint the result equals the uninterrupted
/// run bit for bit.
TrainResult resume_training(const std::string& dir, const RatingSet& train, const RatingSet* test,
                            const EpochCallback& on_epoch, const ResumeOptions& opt = {});

}  // namespace mascot
