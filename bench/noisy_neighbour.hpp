// The "noisy neighbour" of the multi-thread cases (bench/README.md, "Threads beside a busy
// process"): another process that keeps one core busy for as long as a case runs, as a build or
// another service does on a shared server.
//
// It is a child process in a session of its own, not a thread of the benchmark: Linux's
// autogroup scheduling gives each session an equal share of the CPUs, so a spinner in another
// session leaves the benchmark's threads about one core between them, which is what a user beside
// someone else's job gets. (A spinning thread of the benchmark itself would share the benchmark's
// group and take less from it.)
#pragma once
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

namespace facet::bench {

class NoisyNeighbour {
public:
    NoisyNeighbour() {
        child_ = fork();
        if (child_ < 0) throw std::runtime_error("cannot start the noisy neighbour (fork failed)");
        if (child_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlive a benchmark that crashed
            setsid();
            for (volatile unsigned long spins = 0;; spins = spins + 1) {
            }
        }
    }
    ~NoisyNeighbour() {
        kill(child_, SIGKILL);
        waitpid(child_, nullptr, 0);
    }
    NoisyNeighbour(const NoisyNeighbour&) = delete;
    NoisyNeighbour& operator=(const NoisyNeighbour&) = delete;

private:
    pid_t child_;
};

} // namespace facet::bench
