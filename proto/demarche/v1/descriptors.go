package demarchev1

import (
	_ "embed"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptorSet is every schema of this module and the files they import, as a
// google.protobuf.FileDescriptorSet with source info (comments), written by
// `make proto` (buf build --as-file-descriptor-set). The generated Go code
// carries the same descriptors without comments; TestDescriptorSetCurrent
// checks they agree.
//
//go:embed descriptors.binpb
var descriptorSet []byte

var (
	filesOnce sync.Once
	files     *protoregistry.Files
	filesSet  *descriptorpb.FileDescriptorSet
	filesErr  error
)

func loadFiles() {
	filesSet = &descriptorpb.FileDescriptorSet{}
	if filesErr = proto.Unmarshal(descriptorSet, filesSet); filesErr != nil {
		filesErr = fmt.Errorf("embedded descriptor set: %w", filesErr)
		return
	}
	if files, filesErr = protodesc.NewFiles(filesSet); filesErr != nil {
		filesErr = fmt.Errorf("embedded descriptor set: %w", filesErr)
	}
}

// SchemaFiles returns the schemas with their comments: the registry built from
// the embedded descriptor set, for documentation and for clients that decode
// events without generated code.
func SchemaFiles() (*protoregistry.Files, error) {
	filesOnce.Do(loadFiles)
	return files, filesErr
}

// SchemaFileSet returns a copy of the embedded descriptor set.
func SchemaFileSet() (*descriptorpb.FileDescriptorSet, error) {
	filesOnce.Do(loadFiles)
	if filesErr != nil {
		return nil, filesErr
	}
	return proto.Clone(filesSet).(*descriptorpb.FileDescriptorSet), nil
}
