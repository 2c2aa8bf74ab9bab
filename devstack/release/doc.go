// Package release holds the tests of Démarche's release: the build is
// reproducible (two builds of linux/amd64 from two copies of the tree give
// the same bytes) and stamps the version, commit and commit time that
// `demarche version` prints; the container build file builds the same binary
// the same way and runs it as uid 10001 on a distroless base; and the
// procedure of docs/releasing.md works, rehearsed in a temporary clone. The
// upgrade test (a crisis opened by the previous release continues on this
// code) lives beside the fault suite, in devstack/chaos (TestUpgrade).
package release
