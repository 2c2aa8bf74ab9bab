module github.com/demarche/demarche/devstack

go 1.26.8
