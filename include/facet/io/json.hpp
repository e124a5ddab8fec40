// facet: a small JSON reader (weight-file metadata, golden files) and number formatting for output.
// Strict RFC 8259 subset: objects, arrays, strings (with \u escapes to UTF-8), numbers, true,
// false, null. Nesting is limited so a hostile file cannot exhaust the stack.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace facet::json {

class Value {
public:
    enum class Type { null, boolean, number, string, array, object };

    Value() = default; // null

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::null; }
    bool is_number() const { return type_ == Type::number; }
    bool is_string() const { return type_ == Type::string; }
    bool is_array() const { return type_ == Type::array; }
    bool is_object() const { return type_ == Type::object; }

    double number() const { expect(Type::number, "a number"); return number_; }
    bool boolean() const { expect(Type::boolean, "true or false"); return boolean_; }
    const std::string& string() const { expect(Type::string, "a string"); return string_; }
    const std::vector<Value>& array() const { expect(Type::array, "an array"); return array_; }
    const std::map<std::string, Value>& object() const { expect(Type::object, "an object"); return object_; }

    bool has(const std::string& key) const { return is_object() && object_.count(key) != 0; }
    // The member `key`; throws naming the key when it is absent (metadata missing a field).
    const Value& operator[](const std::string& key) const {
        const auto& obj = object();
        auto it = obj.find(key);
        if (it == obj.end()) throw Error("missing key '" + key + "'");
        return it->second;
    }
    const Value& operator[](std::size_t i) const {
        const auto& arr = array();
        if (i >= arr.size()) throw Error("index " + std::to_string(i) + " out of range");
        return arr[i];
    }

    static Value make_null() { return Value(Type::null); }
    static Value make_bool(bool b) { Value v(Type::boolean); v.boolean_ = b; return v; }
    static Value make_number(double d) { Value v(Type::number); v.number_ = d; return v; }
    static Value make_string(std::string s) { Value v(Type::string); v.string_ = std::move(s); return v; }
    static Value make_array(std::vector<Value> a) { Value v(Type::array); v.array_ = std::move(a); return v; }
    static Value make_object(std::map<std::string, Value> o) { Value v(Type::object); v.object_ = std::move(o); return v; }

private:
    explicit Value(Type t) : type_(t) {}
    void expect(Type t, const char* what) const {
        if (type_ != t) throw Error(std::string("expected ") + what);
    }
    Type type_ = Type::null;
    bool boolean_ = false;
    double number_ = 0.0;
    std::string string_;
    std::vector<Value> array_;
    std::map<std::string, Value> object_;
};

namespace detail {

class Parser {
public:
    Parser(const char* begin, const char* end) : p_(begin), end_(end) {}

    Value parse_document() {
        Value v = parse_value(0);
        skip_space();
        if (p_ != end_) fail("trailing characters");
        return v;
    }

private:
    static constexpr int kMaxDepth = 64;

    [[noreturn]] void fail(const std::string& why) const { throw Error("invalid JSON: " + why); }

    void skip_space() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }
    bool consume(char c) {
        skip_space();
        if (p_ != end_ && *p_ == c) { ++p_; return true; }
        return false;
    }
    void expect(char c) {
        if (!consume(c)) fail(std::string("expected '") + c + "'");
    }
    bool consume_word(const char* w) {
        const char* q = p_;
        for (; *w; ++w, ++q)
            if (q == end_ || *q != *w) return false;
        p_ = q;
        return true;
    }

    Value parse_value(int depth) {
        if (depth > kMaxDepth) fail("nested too deeply");
        skip_space();
        if (p_ == end_) fail("unexpected end");
        switch (*p_) {
        case '{': return parse_object(depth);
        case '[': return parse_array(depth);
        case '"': return Value::make_string(parse_string());
        default: break;
        }
        if (consume_word("true")) return Value::make_bool(true);
        if (consume_word("false")) return Value::make_bool(false);
        if (consume_word("null")) return Value::make_null();
        return Value::make_number(parse_number());
    }

    Value parse_object(int depth) {
        expect('{');
        std::map<std::string, Value> members;
        if (consume('}')) return Value::make_object(std::move(members));
        do {
            skip_space();
            std::string key = parse_string();
            expect(':');
            members[key] = parse_value(depth + 1);
        } while (consume(','));
        expect('}');
        return Value::make_object(std::move(members));
    }

    Value parse_array(int depth) {
        expect('[');
        std::vector<Value> items;
        if (consume(']')) return Value::make_array(std::move(items));
        do items.push_back(parse_value(depth + 1));
        while (consume(','));
        expect(']');
        return Value::make_array(std::move(items));
    }

    double parse_number() {
        const char* start = p_;
        if (p_ != end_ && *p_ == '-') ++p_;
        auto digits = [&] {
            const char* d = p_;
            while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
            return p_ != d;
        };
        if (!digits()) fail("bad number");
        if (p_ != end_ && *p_ == '.') { ++p_; if (!digits()) fail("bad number"); }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (!digits()) fail("bad number");
        }
        return std::strtod(std::string(start, p_).c_str(), nullptr);
    }

    static void append_utf8(std::string& s, unsigned cp) {
        if (cp < 0x80) s += static_cast<char>(cp);
        else if (cp < 0x800) { s += static_cast<char>(0xC0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
            s += static_cast<char>(0xE0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            s += static_cast<char>(0xF0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    unsigned parse_hex4() {
        if (end_ - p_ < 4) fail("bad \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i, ++p_) {
            const char c = *p_;
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    }
    std::string parse_string() {
        if (p_ == end_ || *p_ != '"') fail("expected a string");
        ++p_;
        std::string s;
        while (true) {
            if (p_ == end_) fail("unterminated string");
            const char c = *p_++;
            if (c == '"') return s;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') { s += c; continue; }
            if (p_ == end_) fail("unterminated string");
            const char e = *p_++;
            switch (e) {
            case '"': s += '"'; break;
            case '\\': s += '\\'; break;
            case '/': s += '/'; break;
            case 'b': s += '\b'; break;
            case 'f': s += '\f'; break;
            case 'n': s += '\n'; break;
            case 'r': s += '\r'; break;
            case 't': s += '\t'; break;
            case 'u': {
                unsigned cp = parse_hex4();
                if (cp >= 0xD800 && cp < 0xDC00) { // a surrogate pair
                    if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail("lone surrogate");
                    p_ += 2;
                    const unsigned lo = parse_hex4();
                    if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                append_utf8(s, cp);
                break;
            }
            default: fail("bad escape");
            }
        }
    }

    const char* p_;
    const char* end_;
};

} // namespace detail

inline Value parse(const std::string& text) { return detail::Parser(text.data(), text.data() + text.size()).parse_document(); }

// The length of the UTF-8 sequence at s[i] (1 to 4), or 0 if the bytes there are not well-formed
// UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
inline int utf8_sequence_length(const std::string& s, std::size_t i) {
    const auto byte = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
    const unsigned b0 = byte(i);
    const auto continuation = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) { return byte(k) >= lo && byte(k) <= hi; };
    if (b0 < 0x80) return 1;
    if (b0 >= 0xC2 && b0 <= 0xDF) return continuation(i + 1) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
        return continuation(i + 1, lo, hi) && continuation(i + 2) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
        return continuation(i + 1, lo, hi) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
    }
    return 0;
}

// Appends s as a JSON string literal. Control characters are escaped. A byte that is not part of
// well-formed UTF-8 (a file name in another encoding, say) becomes \udcXX, byte 0xXX as Python's
// "surrogateescape" holds it (PEP 383): the output stays ASCII-safe JSON, and Python's
// os.fsencode(json.loads(...)) gives back the exact bytes of the name.
inline void write_string(std::string& out, const std::string& s) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const char c = s[i];
        const int length = utf8_sequence_length(s, i);
        char escape[8];
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (length == 0) {
                std::snprintf(escape, sizeof escape, "\\udc%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                out += escape;
            } else if (static_cast<unsigned char>(c) < 0x20) {
                std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                out += escape;
            } else {
                out.append(s, i, static_cast<std::size_t>(length));
            }
        }
        i += length == 0 ? 1 : static_cast<std::size_t>(length);
    }
    out += '"';
}

// Appends a number with enough digits for sub-pixel coordinates and scores, without exponent
// noise. JSON has no infinity or NaN: a caller checks first (throws Error here, as a last guard).
inline void write_number(std::string& out, double v, int decimals = 4) {
    if (!std::isfinite(v)) throw Error("cannot write a non-finite number (" + std::to_string(v) + ") as JSON");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    out += buf;
}

} // namespace facet::json
