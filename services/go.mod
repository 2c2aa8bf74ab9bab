module github.com/demarche/demarche/services

go 1.26.8
