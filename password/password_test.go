// SPDX-License-Identifier: Apache-2.0

package password

import (
	"errors"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		stored, def            string
		scheme, encoding, data string
		err                    error
	}{
		{"{SHA}abc", "", "SHA", "", "abc", nil},
		{"{sha512-crypt.b64}JDYk", "", "SHA512-CRYPT", "BASE64", "JDYk", nil},
		{"{Plain-MD5.Hex}00", "", "PLAIN-MD5", "HEX", "00", nil},
		{"{SSHA.base64}x", "", "SSHA", "BASE64", "x", nil},
		{"secret", "", "PLAIN", "", "secret", nil},
		{"secret", "crypt", "CRYPT", "", "secret", nil},
		{"00ff", "PLAIN-MD5.hex", "PLAIN-MD5", "HEX", "00ff", nil},
		{"$1$salt$hash$ignored", "PLAIN", "MD5-CRYPT", "", "$1$salt$hash", nil},
		{"$1$salt$hash", "", "MD5-CRYPT", "", "$1$salt$hash", nil},
		{"$1$nosalt", "", "PLAIN", "", "$1$nosalt", nil},
		{"{PLAIN", "MD5", "MD5", "", "{PLAIN", nil},
		{"{}x", "", "", "", "", ErrUnknownScheme},
		{"{FOO}x", "", "", "", "", ErrUnknownScheme},
		{"{SHA.XYZ}x", "", "", "", "", ErrUnknownScheme},
		{"bare", "NOPE", "", "", "", ErrUnknownScheme},
	}
	for _, tt := range tests {
		scheme, enc, data, err := Split(tt.stored, tt.def)
		if !errors.Is(err, tt.err) || scheme != tt.scheme || enc != tt.encoding || data != tt.data {
			t.Errorf("Split(%q, %q) = %q, %q, %q, %v; want %q, %q, %q, %v",
				tt.stored, tt.def, scheme, enc, data, err, tt.scheme, tt.encoding, tt.data, tt.err)
		}
	}
}

// TestVerifyForms: encodings (explicit and guessed), case-insensitive
// names, default schemes for bare values. Hashes from doveadm 2.3.19 for
// "pass word".
func TestVerifyForms(t *testing.T) {
	tests := []struct {
		stored, def string
	}{
		{"{SHA}2oguq15ANCGsJCWKX31fllwpyEk=", ""},
		{"{sha}2oguq15ANCGsJCWKX31fllwpyEk=", ""},
		{"{Sha1.B64}2oguq15ANCGsJCWKX31fllwpyEk=", ""},
		{"{SHA}da882eab5e403421ac24258a5f7d5f965c29c849", ""},     // hex guessed from length
		{"{SHA.HEX}DA882EAB5E403421AC24258A5F7D5F965C29C849", ""}, // either case
		{"{PLAIN-MD5}4ac6430a17d0215b3052b15c879d48bc", ""},
		{"{PLAIN-MD5}SsZDChfQIVswUrFch51IvA==", ""}, // base64 guessed from length
		{"{LDAP-MD5}SsZDChfQIVswUrFch51IvA==", ""},
		{"{ldap-md5.hex}4ac6430a17d0215b3052b15c879d48bc", ""},
		{"{MD5}4ac6430a17d0215b3052b15c879d48bc", ""}, // MD5 takes PLAIN-MD5 too
		{"{MD5}$1$2O8Cn.K5$y/T7VpDPGkhSYM4O/URif0", ""},
		{"$1$2O8Cn.K5$y/T7VpDPGkhSYM4O/URif0", "SHA"}, // bare $1$ is MD5-CRYPT whatever the default
		{"4ac6430a17d0215b3052b15c879d48bc", "MD5"},   // SQL's default
		{"$6$8WHSsim2tt2rKcfi$NyLO4Su4FVu9WIHsTKbQiMACBrV9AwvmWg67eCWi/mqfsmQk5hjGtV.SqoGwqJ/4Hdrm2rZlayGPXGjcMOss4/", "CRYPT"},
		{"{sha256-crypt}$6$8WHSsim2tt2rKcfi$NyLO4Su4FVu9WIHsTKbQiMACBrV9AwvmWg67eCWi/mqfsmQk5hjGtV.SqoGwqJ/4Hdrm2rZlayGPXGjcMOss4/", ""},
		{"pass word", ""},
		{"pass word", "cleartext"},
		{"{PLAIN.b64}cGFzcyB3b3Jk", ""},
		{"cGFzcyB3b3Jk", "PLAIN.BASE64"},
		{"{PLAIN-TRUNC}4-pass", ""},
		{"{DIGEST-MD5}ca012d0de9b95dc5466e7ea4a89baee8", ""},
	}
	for _, tt := range tests {
		p := Params{DefaultScheme: tt.def, User: "user@realm"}
		if ok, err := Verify(tt.stored, "pass word", p); !ok || err != nil {
			t.Errorf("Verify(%q, default %q) = %v, %v; want true", tt.stored, tt.def, ok, err)
		}
		if ok, err := Verify(tt.stored, "Pass word", p); ok || err != nil {
			t.Errorf("Verify(%q, default %q, wrong) = %v, %v; want false", tt.stored, tt.def, ok, err)
		}
	}
}

func TestDigestMD5Realm(t *testing.T) {
	const h = "{DIGEST-MD5}ca012d0de9b95dc5466e7ea4a89baee8" // user@realm, "pass word"
	for _, p := range []Params{{User: "user@realm"}, {User: "user", Realm: "realm"}} {
		if ok, err := Verify(h, "pass word", p); !ok || err != nil {
			t.Errorf("%+v: %v, %v", p, ok, err)
		}
	}
	if ok, err := Verify(h, "pass word", Params{User: "user@realm", Realm: "other"}); ok || err != nil {
		t.Errorf("wrong realm: %v, %v", ok, err)
	}
	if _, err := Verify(h, "pass word", Params{}); !errors.Is(err, ErrInput) {
		t.Errorf("no user: %v, want ErrInput", err)
	}
}

// TestVerifyErrors: a value that cannot be checked is an error of the right
// class, never a mismatch.
func TestVerifyErrors(t *testing.T) {
	tests := []struct {
		stored string
		err    error
	}{
		{"{FOO}x", ErrUnknownScheme},
		{"{SHA.rot13}x", ErrUnknownScheme},
		{"{SHA}2oguq15ANCGsJCWKX31fllwpyE", ErrMalformed}, // unpadded base64
		{"{SHA}", ErrMalformed},
		{"{SHA.HEX}2oguq15ANCGsJCWKX31fllwpyEk=", ErrMalformed},
		{"{SSHA}s8t7idCCEEPVCSHr2jVYqRDP+6s=", ErrMalformed}, // digest without salt
		{"{SMD5}AAAA", ErrMalformed},
		{"{PLAIN.HEX}7", ErrMalformed},
		{"{PLAIN-TRUNC}pass word", ErrMalformed},
		{"{PLAIN-TRUNC}-pass", ErrMalformed},
		{"{MD5}$6$x$y", ErrMalformed},
		{"{MD5}zz", ErrMalformed},
		{"{MD5-CRYPT}$6$8WHSsim2tt2rKcfi$x", ErrMalformed},
		{"{MD5-CRYPT}$1$nosalt", ErrMalformed},
		{"{SHA256-CRYPT}$5$rounds=abc$salt$hash", ErrMalformed},
		{"{SHA512-CRYPT}$6$saltonly", ErrMalformed},
		{"{CRYPT}not a hash", ErrMalformed},
		{"{CRYPT}X.kKeJxbSAM.!", ErrMalformed},
		{"{DES-CRYPT}short", ErrMalformed},
		{"{BLF-CRYPT}$1$2O8Cn.K5$y/T7VpDPGkhSYM4O/URif0", ErrMalformed},
		{"{BLF-CRYPT}$2y$05$short", ErrMalformed},
		{"{CRYPT}$2y$", ErrMalformed},
		{"{BLF-CRYPT}$2q$05$QcEnOuX.tcj1Th1zoEHSVekTDAvaNEPclFnfsCS7JSKAD69yu5kjG", ErrMalformed},
		{"{BLF-CRYPT}$2y$03$QcEnOuX.tcj1Th1zoEHSVekTDAvaNEPclFnfsCS7JSKAD69yu5kjG", ErrMalformed},
		{"{PBKDF2}$1$salt$5000$98bf7fb37aaa4b976fbb16f4c70356ea8f8d245", ErrMalformed},
		{"{PBKDF2}$1$salt$0$98bf7fb37aaa4b976fbb16f4c70356ea8f8d245e", ErrMalformed},
		{"{PBKDF2}$2$salt$5000$98bf7fb37aaa4b976fbb16f4c70356ea8f8d245e", ErrMalformed},
		{"{PBKDF2}$1$salt$5000$98bf7fb37aaa4b976fbb16f4c70356ea8f8d245e$", ErrMalformed},
		{"{ARGON2ID}$argon2id$m=65536,t=3,p=1$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is", ErrMalformed},
		{"{ARGON2ID}$argon2id$v=19$t=3,m=65536,p=1$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is", ErrMalformed},
		{"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$1OBCi3u5Wgqznkgx+49kAA==$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is", ErrMalformed},
		{"{ARGON2ID}$argon2id$v=19$m=4,t=3,p=1$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is", ErrMalformed},
		{"{ARGON2I}$argon2x$v=19$m=65536,t=3,p=1$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is", ErrMalformed},
		{"{SCRAM-SHA-1}1000,2zM8A094aYNGVU34IFCSqw==,tYAdyArx5X3pOY/FcoZCfKTcetU=,0N2lWhbwogKR1LWquMaBPz55208=", ErrMalformed},
		{"{SCRAM-SHA-1}4096,2zM8A094aYNGVU34IFCSqw==,tYAdyArx5X3pOY/FcoZCfKTcetU=,AAAA", ErrMalformed},
		{"{SCRAM-SHA-256}4096,2zM8A094aYNGVU34IFCSqw==,tYAdyArx5X3pOY/FcoZCfKTcetU=,0N2lWhbwogKR1LWquMaBPz55208=", ErrMalformed},
		{"{SCRAM-SHA-1}4096,x", ErrMalformed},
		{"{OTP}SHA1 1024 7368b28333a4c6c0 9150a7ea00725253", ErrMalformed},
		{"{OTP}sha1 1024 73-8 9150a7ea00725253", ErrMalformed},
		{"{OTP}sha1 1024 7368b28333a4c6c0a 9150a7ea00725253", ErrMalformed},
		{"{OTP}sha1 1024 7368b28333a4c6c0 9150a7ea0072525", ErrMalformed},
		{"{OTP}sha1 1024 7368b28333a4c6c0 9150a7ea00725253 ", ErrMalformed},
		{"{CRAM-MD5}ee7caf39bc55ee6231951ebd3832c90a64bbec99612a5f279453f4b6eeff67", ErrMalformed},
		{"{CRYPT}$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", ErrUnsupported},
		{"{CRYPT}$7$CU..../....salt$hash", ErrUnsupported},
		{"{CRYPT}_J9..CCCCXBrJUJV154M", ErrUnsupported},
		{"{ARGON2ID}$argon2id$v=16$m=65536,t=3,p=1$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is", ErrUnsupported},
	}
	for _, tt := range tests {
		ok, err := Verify(tt.stored, "pass word", Params{User: "u"})
		if ok || !errors.Is(err, tt.err) {
			t.Errorf("Verify(%q) = %v, %v; want error %v", tt.stored, ok, err, tt.err)
		}
	}
	// "$2x$" is verified for ASCII passwords only.
	const x = "{BLF-CRYPT}$2x$05$QcEnOuX.tcj1Th1zoEHSVekTDAvaNEPclFnfsCS7JSKAD69yu5kjG" // "pass word"
	if ok, err := Verify(x, "pass word", Params{}); !ok || err != nil {
		t.Errorf("$2x$, ASCII: %v, %v", ok, err)
	}
	if _, err := Verify(x, "päss", Params{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("$2x$, 8-bit: %v, want ErrUnsupported", err)
	}
	// An empty crypt value matches nothing, as in Dovecot.
	if ok, err := Verify("{CRYPT}", "", Params{}); ok || err != nil {
		t.Errorf("empty CRYPT: %v, %v", ok, err)
	}
}

// TestLimits: a stored value over a work limit fails at once with ErrLimit.
func TestLimits(t *testing.T) {
	tests := []string{
		"{BLF-CRYPT}$2y$16$QcEnOuX.tcj1Th1zoEHSVekTDAvaNEPclFnfsCS7JSKAD69yu5kjG",
		"{CRYPT}$2b$31$QcEnOuX.tcj1Th1zoEHSVekTDAvaNEPclFnfsCS7JSKAD69yu5kjG",
		"{SHA512-CRYPT}$6$rounds=1000001$salt$hash",
		"{CRYPT}$5$rounds=999999999$salt$hash",
		"{PBKDF2}$1$salt$2000001$98bf7fb37aaa4b976fbb16f4c70356ea8f8d245e",
		"{SCRAM-SHA-1}4000000000,2zM8A094aYNGVU34IFCSqw==,tYAdyArx5X3pOY/FcoZCfKTcetU=,0N2lWhbwogKR1LWquMaBPz55208=",
		"{ARGON2ID}$argon2id$v=19$m=524288,t=1,p=1$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is",
		"{ARGON2ID}$argon2id$v=19$m=65536,t=17,p=1$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is",
		"{ARGON2I}$argon2i$v=19$m=65536,t=3,p=17$1OBCi3u5Wgqznkgx+49kAA$vxjhkD0HkQHD6gRa05K6H9ciy51jNveVInAKZeSR+is",
		"{OTP}sha1 99999999 ab 9150a7ea00725253",
	}
	for _, stored := range tests {
		if ok, err := Verify(stored, "pass word", Params{}); ok || !errors.Is(err, ErrLimit) {
			t.Errorf("Verify(%q) = %v, %v; want ErrLimit", stored, ok, err)
		}
	}
	for _, g := range []struct {
		scheme string
		rounds int
	}{{"BLF-CRYPT", 16}, {"BLF-CRYPT", 3}, {"SHA512-CRYPT", 999}, {"SHA256-CRYPT", MaxSHACryptRounds + 1},
		{"PBKDF2", MaxPBKDF2Iterations + 1}, {"SCRAM-SHA-1", 4095}, {"ARGON2I", 2}, {"ARGON2ID", 17}} {
		if _, err := Generate(g.scheme, "x", Params{Rounds: g.rounds}); !errors.Is(err, ErrInput) {
			t.Errorf("Generate(%s, rounds %d): %v, want ErrInput", g.scheme, g.rounds, err)
		}
	}
}

// TestPlainTooLong: a password over MaxPlainLen never matches.
func TestPlainTooLong(t *testing.T) {
	long := strings.Repeat("a", MaxPlainLen+1)
	if ok, err := Verify("{PLAIN}"+long, long, Params{}); ok || err != nil {
		t.Errorf("Verify = %v, %v; want false, nil", ok, err)
	}
	if _, err := Generate("PLAIN", long, Params{}); !errors.Is(err, ErrInput) {
		t.Errorf("Generate: %v, want ErrInput", err)
	}
	if ok, err := Verify("{PLAIN}"+long[1:], long[1:], Params{}); !ok || err != nil {
		t.Errorf("MaxPlainLen itself: %v, %v", ok, err)
	}
}

// TestGenerateRoundTrip: every scheme's output verifies here, with the
// prefix written as asked.
func TestGenerateRoundTrip(t *testing.T) {
	t.Parallel() // the slow ones (Argon2, doveadm) overlap
	p := Params{User: "user@realm"}
	names := append(Schemes(), "sha256.hex", "SSHA512.B64", "blf-crypt")
	for _, s := range names {
		for i, pw := range testPasswords {
			if strings.HasPrefix(s, "ARGON2") && i%2 == 1 {
				continue // 32-64 MiB each: two passwords are enough
			}
			h, err := Generate(s, pw, p)
			if err != nil {
				t.Fatalf("Generate(%s): %v", s, err)
			}
			if !strings.HasPrefix(h, "{"+strings.ToUpper(s)+"}") {
				t.Errorf("Generate(%s) = %q: wrong prefix", s, h)
			}
			if ok, err := Verify(h, pw, p); !ok || err != nil {
				t.Errorf("Verify(%q, %q) = %v, %v", h, pw, ok, err)
			}
			if ok, err := Verify(h, "X"+pw, p); ok || err != nil {
				t.Errorf("Verify(%q, wrong) = %v, %v", h, ok, err)
			}
		}
	}
	if _, err := Generate("NOPE", "x", p); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("Generate(NOPE): %v", err)
	}
	if _, err := Generate("DIGEST-MD5", "x", Params{}); !errors.Is(err, ErrInput) {
		t.Errorf("Generate(DIGEST-MD5) without user: %v", err)
	}
}

// TestGenerateDefaults: the cost parameters match doveadm's defaults, and
// Rounds changes them.
func TestGenerateDefaults(t *testing.T) {
	tests := []struct {
		scheme string
		rounds int
		prefix string
	}{
		{"BLF-CRYPT", 0, "{BLF-CRYPT}$2y$05$"},
		{"CRYPT", 0, "{CRYPT}$2y$05$"},
		{"BLF-CRYPT", 7, "{BLF-CRYPT}$2y$07$"},
		{"SHA512-CRYPT", 0, "{SHA512-CRYPT}$6$"},
		{"SHA256-CRYPT", 1000, "{SHA256-CRYPT}$5$rounds=1000$"},
		{"MD5", 0, "{MD5}$1$"},
		{"PBKDF2", 0, "{PBKDF2}$1$"},
		{"SCRAM-SHA-1", 0, "{SCRAM-SHA-1}4096,"},
		{"ARGON2I", 0, "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$"},
		{"ARGON2ID", 0, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"},
		{"ARGON2ID", 2, "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$"},
		{"OTP", 0, "{OTP}sha1 1024 "},
		{"PLAIN-TRUNC", 0, "{PLAIN-TRUNC}2-x"},
	}
	for _, tt := range tests {
		h, err := Generate(tt.scheme, "x", Params{Rounds: tt.rounds})
		if err != nil || !strings.HasPrefix(h, tt.prefix) {
			t.Errorf("Generate(%s, %d) = %q, %v; want prefix %q", tt.scheme, tt.rounds, h, err, tt.prefix)
		}
	}
	h, _ := Generate("PBKDF2", "x", Params{})
	if !strings.Contains(h, "$5000$") {
		t.Errorf("PBKDF2 = %q, want 5000 rounds", h)
	}
}

func TestCostly(t *testing.T) {
	for stored, want := range map[string]bool{
		"{PLAIN}x": false, "{SSHA}c2FsdHNhbHRzYWx0c2FsdHNhbHQ=": false, "{PLAIN-MD5}0123456789abcdef0123456789abcdef": false,
		"$1$salt$hash": false, "{DES-CRYPT}abcdefghijklm": false,
		"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$x$y": true, "{BLF-CRYPT}$2y$05$x": true,
		"{SHA512-CRYPT}$6$x$y": true, "{PBKDF2}$1$x$5000$y": true, "{SCRAM-SHA-256}4096,x,y,z": true,
		"$6$rounds=5000$salt$hash": true, // no prefix: the default scheme below
	} {
		h, err := Parse(stored, Params{DefaultScheme: "SHA512-CRYPT"})
		if err != nil {
			t.Errorf("Parse(%q): %v", stored, err)
			continue
		}
		if got := h.Costly(); got != want {
			t.Errorf("Costly(%q) = %v, want %v", stored, got, want)
		}
	}
	if _, err := Parse("{NO-SUCH-SCHEME}x", Params{}); err == nil {
		t.Error("an unknown scheme parses")
	}
	h, err := Parse("{SSHA256}"+mustGenerate(t, "SSHA256", "pw")[len("{SSHA256}"):], Params{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify("pw"); !ok || err != nil {
		t.Errorf("parsed SSHA256 refuses its password: %v", err)
	}
	if ok, _ := h.Verify("other"); ok {
		t.Error("parsed SSHA256 accepts another password")
	}
}

func mustGenerate(t *testing.T, scheme, plain string) string {
	t.Helper()
	s, err := Generate(scheme, plain, Params{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
