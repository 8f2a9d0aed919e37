package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The browser signs in once with the token and then carries a session
// cookie: "expiry.nonce.mac", the mac an HMAC of expiry and nonce keyed by
// the token. It is stateless (any replica accepts it, a restart keeps it,
// changing the token ends every session) and never contains the token.
// Forms carry a CSRF token derived from the session (an HMAC of the
// cookie), checked on every POST together with the Origin header.

const (
	sessionCookie = "indexpilot_session"
	sessionTTL    = 12 * time.Hour
)

// auth decides who may change things.
type auth struct {
	key []byte // the configured token; nil means read-only
}

// readOnly reports that no token is configured.
func (a auth) readOnly() bool { return len(a.key) == 0 }

// tokenOK compares a presented token with the configured one in constant
// time (over digests, so that the length is not revealed either).
func (a auth) tokenOK(presented string) bool {
	if a.readOnly() || presented == "" {
		return false
	}
	x := sha256.Sum256([]byte(presented))
	y := sha256.Sum256(a.key)
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// bearer returns the token of an "Authorization: Bearer T" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (a auth) mac(parts ...string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession returns a fresh session cookie value valid until now+TTL.
func (a auth) newSession(now time.Time) string {
	var n [16]byte
	_, _ = rand.Read(n[:])
	exp := strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	nonce := base64.RawURLEncoding.EncodeToString(n[:])
	return exp + "." + nonce + "." + a.mac("session", exp, nonce)
}

// session returns the request's valid session cookie value, or "".
func (a auth) session(r *http.Request, now time.Time) string {
	if a.readOnly() {
		return ""
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return ""
	}
	exp, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || now.Unix() > exp {
		return ""
	}
	if !hmac.Equal([]byte(parts[2]), []byte(a.mac("session", parts[0], parts[1]))) {
		return ""
	}
	return c.Value
}

// csrf is the form token of a session.
func (a auth) csrf(session string) string {
	if session == "" {
		return ""
	}
	return a.mac("csrf", session)
}

// csrfOK checks a form's CSRF token against the session, and that the
// request, when the browser says where it comes from, comes from this
// host.
func (a auth) csrfOK(r *http.Request, session string) bool {
	if session == "" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if !sameHost(o, r.Host) {
			return false
		}
	}
	got := r.PostFormValue("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(a.csrf(session)))
}

// sameHost reports whether origin ("http://host:port") names host.
func sameHost(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}

// actor names who made a change, for mutation_log: how they signed in and
// from where. A proxy's X-Forwarded-For is added as told by the client;
// the token never is.
func actor(r *http.Request, how string) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	s := "dashboard " + how + " from " + host
	if f := r.Header.Get("X-Forwarded-For"); f != "" {
		if len(f) > 100 {
			f = f[:100]
		}
		s += " (forwarded for " + f + ")"
	}
	return s
}
