// Linked into every fuzz target: see budget.hpp. Defining this symbol keeps the profile
// runtime's at-exit writer (InstrProfilingRuntime) out of the binary: the counters are only
// read in memory, nothing is written to default.profraw.
extern "C" {
int __llvm_profile_runtime = 0;
}
