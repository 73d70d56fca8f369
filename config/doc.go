// SPDX-License-Identifier: Apache-2.0

// Package config is maildirector's YAML configuration: the schema, strict
// loading (an unknown key is an error with its line), defaults and
// validation. Constructors elsewhere turn it into running parts.
//
// It may import auth only. Parts that belong to other packages (backend
// specs, passdb args) are checked by their constructors, which do no I/O.
package config
