// libFuzzer harness: the YUV4MPEG2 reader (header parsing, frame markers, colour conversion).
// Frames are capped at 256 x 256 pixels: a larger header is read, then the stream skipped.
#include <facet/io/y4m.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::FILE* f = fmemopen(const_cast<std::uint8_t*>(data), size, "rb");
    if (!f) return 0;
    try {
        facet::Y4mReader reader(f, "fuzz.y4m");
        if (static_cast<long long>(reader.width()) * reader.height() <= 256 * 256) {
            facet::Image frame;
            for (int n = 0; n < 8 && reader.read(frame); ++n)
                if (frame.width != reader.width() || frame.rgb.size() != static_cast<std::size_t>(frame.width) * frame.height * 3)
                    std::abort();
        }
    } catch (const facet::Error&) {
    }
    std::fclose(f);
    return 0;
}
