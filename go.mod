module github.com/maildirector/maildirector

go 1.26.8

require (
	github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
)
