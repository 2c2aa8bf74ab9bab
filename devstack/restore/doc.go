// Package restore holds the restore drill (TestRestoreDrill): crises
// mid-flight, `demarche admin backup`, the data folder destroyed,
// `demarche admin restore` into a new one, and the platform going on from
// where it was. A package of its own keeps devstack/stack's test binary small.
package restore
