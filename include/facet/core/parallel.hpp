// facet: the thread pool every parallel loop in facet runs on (README, Design notes: "Threads").
//
// A loop's indices are claimed in chunks from one atomic counter by the calling thread and by the
// pool's workers that join it. The caller always takes part and keeps claiming until no chunk is
// left, so a worker that is descheduled (another process holds the core) costs the loop at most
// the chunk it holds, never a time slice per barrier; a worker that wakes up late finds nothing to
// do. After a loop in which the caller did wait a long time for such a chunk, loops run on their
// callers alone for a while (note_wait). Workers spin for a few tens of microseconds after a loop (the next layer's loop usually
// comes sooner) and then sleep on a condition variable, so nothing burns a core between frames.
// Each index runs the same code whichever thread claims it, so results do not depend on the thread
// count. An exception thrown by the body (facet::Error, std::bad_alloc) stops further claims and
// is rethrown, unchanged, to the caller once every thread has left the loop.
//
// The pool is a class template over an owner tag: the kernels pass their xsimd architecture, so
// each per-instruction-set object (include/facet/arch/isa_*.cpp, compiled with its own -m flags)
// has its own copy of the pool's code and the linker can never hand one instruction set's copy to
// another (tests/test_isa_symbols.sh); everything else uses GenericCode. For the same reason it
// locks and sleeps with POSIX mutexes and condition variables, which are libc's: std::unique_lock's
// inline members would be one weak symbol shared by the three objects.
#pragma once
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <thread>
#include <type_traits>
#include <vector>

namespace facet {

// The owner tag of code compiled with the program's own flags (the models, the examples).
struct GenericCode {};

namespace detail {

template <class Owner>
class WorkerPool {
public:
    // Runs chunk(context, first, last, worker) over [0, items) in chunks, on the calling thread
    // (worker 0) and up to threads - 1 pool workers (1, 2, ...: distinct among the threads in this
    // loop). Rethrows the first exception a chunk threw.
    using ChunkFn = void (*)(void* context, int first, int last, int worker);

    static WorkerPool& instance() {
        // Never destroyed: a worker asleep at exit costs nothing, while a destructor would have to
        // run after every static object that might still start a loop.
        static WorkerPool* const pool = new WorkerPool;
        return *pool;
    }

    void run(int items, int threads, ChunkFn chunk, void* context) {
        Job job;
        job.chunk_fn = chunk;
        job.context = context;
        job.items = items;
        // About eight chunks per thread: small enough that the caller can take over a stalled
        // worker's share, large enough that claiming costs nothing next to a chunk's work.
        job.chunk = std::max(1, items / (8 * threads));
        const int chunks = (items + job.chunk - 1) / job.chunk;
        job.helpers_wanted = std::min(std::min(threads, chunks), kMaxWorkers + 1) - 1;
        using Clock = std::chrono::steady_clock;
        const Clock::time_point start = Clock::now();
        const bool published = start.time_since_epoch().count() >= alone_until_.load(std::memory_order_relaxed) && publish(job);
        work(job, 0);
        if (published) {
            const Clock::time_point worked = Clock::now();
            retract(job);
            note_wait(worked - start, Clock::now() - worked);
        }
        if (job.failed.load(std::memory_order_relaxed)) std::rethrow_exception(job.error);
    }

private:
    // How long a thread spins before it sleeps: a worker waiting for the next loop, a caller
    // waiting for the workers still in its loop.
    static constexpr std::chrono::microseconds kSpin{50};
    static constexpr int kMaxWorkers = 64;
    // After a loop whose caller waited for a worker much longer than the loop's own work took (the
    // worker was descheduled holding a chunk: another process has its core), loops run on their
    // callers alone for kBackOff, doubled for each such loop in a row up to 64x, then the workers
    // are tried again. So a machine that stays busy costs one stall in ~1.3 s, not one a frame.
    static constexpr std::chrono::microseconds kStallMargin{200};
    static constexpr std::chrono::milliseconds kBackOff{20};
    static constexpr int kMaxBackOffDoublings = 6;

    // mutex_ held for a scope.
    class Hold {
    public:
        explicit Hold(pthread_mutex_t& m) : m_(m) { pthread_mutex_lock(&m_); }
        ~Hold() { pthread_mutex_unlock(&m_); }
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;

    private:
        pthread_mutex_t& m_;
    };

    struct Job {
        ChunkFn chunk_fn = nullptr;
        void* context = nullptr;
        int items = 0, chunk = 1;
        std::atomic<std::int64_t> next{0}; // first unclaimed index (64-bit: claims overshoot items)
        std::atomic<bool> failed{false};
        std::exception_ptr error;          // written by the thread that set failed
        // Guarded by mutex_:
        int helpers_wanted = 0; // workers that may still join
        int joined = 0;         // workers that joined (their indices are 1..joined)
        // Workers that joined and have not left; changed under mutex_, read by the caller's spin.
        std::atomic<int> inside{0};
    };

    static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    // Spins until `done()` or kSpin has passed; returns done(). It yields between rounds, so a
    // thread that shares this core (the one being waited for, when the machine is busy) runs.
    template <class Done>
    static bool spin_until(Done&& done) {
        const auto deadline = std::chrono::steady_clock::now() + kSpin;
        for (;;) {
            for (int i = 0; i < 32; ++i) {
                if (done()) return true;
                cpu_relax();
            }
            if (std::chrono::steady_clock::now() >= deadline) return done();
            std::this_thread::yield();
        }
    }

    static void work(Job& job, int worker) {
        while (!job.failed.load(std::memory_order_relaxed)) {
            const std::int64_t first = job.next.fetch_add(job.chunk, std::memory_order_relaxed);
            if (first >= job.items) return;
            const int last = static_cast<int>(std::min<std::int64_t>(first + job.chunk, job.items));
            try {
                job.chunk_fn(job.context, static_cast<int>(first), last, worker);
            } catch (...) {
                if (!job.failed.exchange(true)) job.error = std::current_exception();
                return;
            }
        }
    }

    // Offers `job` to the workers (starting any that are missing); false if it wants none.
    bool publish(Job& job) {
        if (job.helpers_wanted == 0) return false;
        const Hold hold(mutex_);
        try {
            for (; workers_ < job.helpers_wanted; ++workers_) std::thread([this] { serve(); }).detach();
        } catch (...) {
            // No more threads to be had (std::system_error at a process or container limit; out of
            // memory for the stack): the loop runs on those there are, or on the caller alone.
            // (Caught as ... so that no ISA object refers to std::system_error's type info.)
            job.helpers_wanted = workers_;
            if (workers_ == 0) return false;
        }
        open_.push_back(&job);
        published_.fetch_add(1, std::memory_order_release);
        if (sleeping_ > 0) pthread_cond_broadcast(&work_ready_);
        return true;
    }

    void note_wait(std::chrono::steady_clock::duration worked, std::chrono::steady_clock::duration waited) {
        if (waited <= worked + kStallMargin) {
            stalls_in_a_row_.store(0, std::memory_order_relaxed);
            return;
        }
        const int doublings = std::min(stalls_in_a_row_.fetch_add(1, std::memory_order_relaxed), kMaxBackOffDoublings);
        const auto until = std::chrono::steady_clock::now() + kBackOff * (1 << doublings);
        alone_until_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
    }

    // Takes `job` off the open list (no worker joins it after this) and waits for the workers in it.
    void retract(Job& job) {
        {
            const Hold hold(mutex_);
            open_.erase(std::find(open_.begin(), open_.end(), &job));
        }
        // The workers still inside hold at most a chunk each: usually done within microseconds.
        const auto all_left = [&] { return job.inside.load(std::memory_order_acquire) == 0; };
        if (spin_until(all_left)) return;
        const Hold hold(mutex_);
        while (!all_left()) pthread_cond_wait(&job_done_, &mutex_);
    }

    // An open job that still wants a worker, joined; nullptr if none. Called with mutex_ held.
    Job* join_open_job(int& worker) {
        for (Job* job : open_)
            if (job->helpers_wanted > 0 && job->next.load(std::memory_order_relaxed) < job->items) {
                --job->helpers_wanted;
                worker = ++job->joined;
                ++job->inside;
                return job;
            }
        return nullptr;
    }

    // A worker's life: join a loop, work in it, leave; spin a while for the next, then sleep.
    void serve() {
        for (;;) {
            const unsigned seen = published_.load(std::memory_order_acquire);
            int worker = 0;
            Job* job = nullptr;
            {
                const Hold hold(mutex_);
                job = join_open_job(worker);
            }
            if (!job) {
                if (spin_until([&] { return published_.load(std::memory_order_acquire) != seen; })) continue;
                const Hold hold(mutex_);
                while (!(job = join_open_job(worker))) {
                    ++sleeping_;
                    pthread_cond_wait(&work_ready_, &mutex_);
                    --sleeping_;
                }
            }
            work(*job, worker);
            // The job lives on its caller's stack: this decrement is the last touch of it.
            const Hold hold(mutex_);
            if (job->inside.fetch_sub(1, std::memory_order_acq_rel) == 1) pthread_cond_broadcast(&job_done_);
        }
    }

    pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t work_ready_ = PTHREAD_COND_INITIALIZER; // workers sleep here
    pthread_cond_t job_done_ = PTHREAD_COND_INITIALIZER;   // callers wait for their loop's last worker here
    std::vector<Job*> open_;             // loops that may still take workers
    std::atomic<unsigned> published_{0}; // loops published so far: what spinning workers watch
    // Back-off after stalls (note_wait): until when loops run on their callers alone (steady_clock
    // ticks), and how many stalled loops came in a row.
    std::atomic<std::chrono::steady_clock::rep> alone_until_{0};
    std::atomic<int> stalls_in_a_row_{0};
    int workers_ = 0, sleeping_ = 0;
};

} // namespace detail

// body(i, worker) for every i in [begin, end), on up to `threads` threads (the caller and pool
// workers); worker is in [0, threads) and no two threads in the loop at once share one, so it can
// index per-thread scratch. One thread, or one index: a plain loop on the caller.
template <class Owner = GenericCode, class Body>
void parallel_for_workers(int begin, int end, int threads, Body&& body) {
    if (end <= begin) return;
    if (threads <= 1 || end - begin == 1) {
        for (int i = begin; i < end; ++i) body(i, 0);
        return;
    }
    struct Context {
        std::remove_reference_t<Body>* body;
        int begin;
    } context{&body, begin};
    const auto chunk = [](void* c, int first, int last, int worker) {
        const Context& ctx = *static_cast<Context*>(c);
        for (int i = first; i < last; ++i) (*ctx.body)(ctx.begin + i, worker);
    };
    detail::WorkerPool<Owner>::instance().run(end - begin, threads, chunk, &context);
}

// body(i) for every i in [begin, end), as parallel_for_workers.
template <class Owner = GenericCode, class Body>
void parallel_for(int begin, int end, int threads, Body&& body) {
    parallel_for_workers<Owner>(begin, end, threads, [&body](int i, int) { body(i); });
}

} // namespace facet
