// Publication of outputs and small filesystem helpers (cpp/src/fileutil.cc).
//
// OutputSet is the one mechanism through which MASCOT writes anything a user keeps: the model
// directory, the run report, the LIBMF export, .mrat / text rating files, checkpoint files and
// their directory, and (through the _core.OutputSet binding, mascot/_files.py) the prepared
// datasets, experiment results and benchmark outputs of the Python package.  Its life cycle:
//
//   declare   input(), file(), directory(), live_directory(): every input and output of a run
//   prepare   every target is resolved (symlinks followed to their target, `..` normalised),
//             checked (a kind it may write; no output equal to an input or to another output,
//             nor inside an output directory, by resolved path and by device + inode), and
//             staged: a temp file or directory beside the target is created now, which proves
//             the target creatable; stale temps of dead processes are removed.  Nothing the
//             user owns is touched.  Callers prepare before loading data or training.
//   stage     write() / staging_path(): the content goes into the staged temps only
//   publish   only when everything is staged: fsync, then each output is put in place (regular
//             files and directories by an atomic exchange, renameat2(RENAME_EXCHANGE), so the old
//             content can be put back), then devices and FIFOs are streamed into; a failure at
//             any step undoes the steps before it; only then is the old content removed.
//   discard   the destructor (or discard()) of a set not published removes its temps: every
//             pre-existing file stays as it was.
//
// Kinds of target:
//   - a regular file, or a missing one: replaced atomically (temp + exchange/rename); an
//     existing file keeps its permission bits;
//   - a character device or FIFO (/dev/null, a named pipe): streamed into at publication, never
//     replaced (the content is staged in $TMPDIR meanwhile); /dev/stdout, /dev/stderr,
//     /dev/fd/N and /proc/self/fd/N write to that descriptor;
//   - a block device, socket or directory where a file is expected: refused;
//   - a directory output (DirSpec): replaced as a whole by an exchange with its staged copy, but
//     only when it holds nothing except what the tool writes there (DirSpec::ours); foreign
//     content is refused, never deleted; the current directory (or one containing it) is refused;
//   - a live directory (a checkpoint directory): written during the run by its owner, never
//     replaced; prepare() creates it when missing and takes its advisory lock (LockedDir).
//
// Crash safety: each output is replaced in one atomic step.  Where the file system has no
// RENAME_EXCHANGE (EINVAL / ENOSYS: some network and FUSE file systems, non-Linux), a directory is
// replaced by two renames (old aside to ".NAME.old.PID.N", new in) and a file by a hard link of the
// old content to that name and a rename; a crash between the two renames leaves the old content
// there, and the next OutputSet for that target (or a load of it, which says so) puts it back.
// Temps are ".NAME.tmp.PID.N" beside their target; those of processes that no longer run are
// removed when a later run prepares the same target.  A crash during publication of several
// outputs can leave some replaced and others not; each one is whole.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mascot::detail {

/// What a directory output may find at its path, and what the tool writes there.
struct DirSpec {
  /// Entries this tool writes into such a directory.  An existing directory holding anything
  /// else is refused (directory outputs), or left alone (live directories).
  std::function<bool(const std::string&)> ours;
  /// A non-empty existing directory must hold this entry to be replaced (e.g. model.json);
  /// for a live directory: a directory holding it is never removed on discard.
  std::string marker;
  bool replace = true;              ///< false: an existing directory is refused ("exists")
  std::string content = "a model";  ///< what it holds, for messages ("not part of a model")
  /// Live directories: the owner's checks of the (locked) directory, called by prepare() after
  /// the lock is taken; it may remove leftovers of dead writers.  Throws to refuse it.
  std::function<void(const std::string& dir)> on_existing;
};

/// The name of the advisory lock file prepare() creates in a live directory (removed on release).
inline constexpr const char* kLockFile = ".mascot.lock";

class OutputSet {
 public:
  using Handle = size_t;
  OutputSet();
  ~OutputSet();  ///< discard() unless published
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  /// A file this run reads (--train, --test, a dataset's files): no output may be it, and no
  /// directory output may contain it.  `what` names it in messages ("--train").
  void input(const std::string& what, const std::string& path);
  /// A file output.  `what` names it in messages ("--report"; "" for none).
  Handle file(const std::string& what, const std::string& path);
  /// A directory output, replaced as a whole at publication (the model directory, a dataset).
  Handle directory(const std::string& what, const std::string& path, DirSpec spec);
  /// A directory written while the run goes on (checkpoints); see DirSpec::on_existing.
  Handle live_directory(const std::string& what, const std::string& path, DirSpec spec);

  /// Resolves, checks and stages every output declared since the last call (see the file
  /// comment); throws IoError / InvalidArgument naming the option and path, leaving nothing.
  void prepare();
  /// The staged temp file or directory of output h (after prepare); callers fill it.
  const std::string& staging_path(Handle h) const;
  /// The resolved target of output h (after prepare): where it will be, symlinks followed.
  const std::string& target_path(Handle h) const;
  /// Appends to file output h's staged content.
  void write(Handle h, const void* data, size_t n);
  void write(Handle h, const std::string& s) { write(h, s.data(), s.size()); }
  /// Puts every output in place, all or none (prepares first when needed); a failure discards
  /// the set (the targets are as they were, the temps gone).
  void publish();
  /// Removes everything staged and not published; releases locks (never throws).
  void discard() noexcept;
  bool published() const { return published_; }
  bool discarded() const { return discarded_; }
  /// Things prepare() did that a user may want to know (an interrupted replacement restored).
  const std::vector<std::string>& notes() const { return notes_; }

  struct Output;
  struct Input;

 private:
  void prepare_output(Output& o);
  void check_pairs(size_t first_new);
  void stage(Output& o);
  void publish_all();
  static void drop(Output& o) noexcept;
  std::vector<std::unique_ptr<Output>> outputs_;
  std::vector<std::unique_ptr<Input>> inputs_;
  std::vector<std::string> notes_;
  bool published_ = false, discarded_ = false;
};

/// Writes one file through an OutputSet of its own: the content goes to a temp file beside the
/// target and is put in place by commit(); on any failure (or without commit) the target is
/// untouched.  Target kinds and checks as for OutputSet::file.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path, const std::string& what = "");
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n) { set_.write(h_, data, n); }
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit() { set_.publish(); }
  const std::string& path() const { return path_; }

 private:
  OutputSet set_;
  OutputSet::Handle h_ = 0;
  std::string path_;
};

/// Writes a whole file that nobody else can see yet (inside a staged directory): create, write,
/// fsync; IoError naming `path` on failure.
void write_new_file(const std::string& path, const void* data, size_t n);
inline void write_new_file(const std::string& path, const std::string& s) { write_new_file(path, s.data(), s.size()); }

/// Test hook: comma-separated fault points ("publish:before", "publish:between",
/// "dir:exchanged", "dir:aside", "file:exchanged"), each optionally ":kill" (SIGKILL there instead
/// of an IoError), and "no-exchange" (use the fallback without RENAME_EXCHANGE).  "" clears.
void set_publish_fault(const std::string& spec);

/// Who holds the lock of live directory `dir` ("process N", "another process"), or "" when no
/// other process does: readers say so instead of blaming a checkpoint still being written.
std::string lock_holder(const std::string& dir);

/// Why `dir` is missing when an interrupted replacement left its old content beside it ("" when
/// none did): for load errors.
std::string interrupted_replacement_note(const std::string& dir);

/// Whole file into a string; IoError on failure.
std::string read_file(const std::string& path);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
/// Why nothing can be created at `path` in its parent directory P, or "" when it can: "directory
/// P does not exist", "P is not a directory" or "directory P is not writable" (access(2): a cheap
/// first look; OutputSet::prepare creates its temps, which is the real test).
std::string cannot_create(const std::string& path);
/// True for an existing directory with no entries besides . and ..
bool is_empty_dir(const std::string& path);
/// The entries of a directory (without . and ..); IoError when it cannot be read.
std::vector<std::string> list_dir(const std::string& dir);
/// Directory part of `path`: "." when it has none, "/" for "/x".
std::string parent_dir(const std::string& path);
/// Last component of `path` (after stripping trailing slashes).
std::string base_name(const std::string& path);
/// "a/b//" -> "a/b"; "/" stays "/".
std::string strip_trailing_slashes(const std::string& path);
/// True when ".NAME.tmp.PID.N" / ".NAME.old.PID.N" (any NAME) or the older "NAME.tmp.PID.N" form:
/// a temp of this mechanism.
bool is_publish_temp(const std::string& name);
/// Removes a directory tree (best effort, no throw), never following symlinks out of it.
void remove_tree(const std::string& path) noexcept;
/// Whether process `pid` runs (kill(pid, 0); EPERM counts as running).
bool pid_alive(long pid);

}  // namespace mascot::detail
