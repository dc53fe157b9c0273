package vsphere

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// maxWaitResumes bounds how often waitTask picks a wait up again.
const maxWaitResumes = 5

// waitTask waits, within ctx, for the vCenter task ref to finish and
// returns its result. The wait runs on a property collector of the
// session; when the session ends meanwhile (expired, or vCenter
// restarted) the re-login makes a new session in which that collector does
// not exist, and the wait fails although the task goes on (E4). So a wait
// that fails for any reason but the task's own error or ctx looks the task
// up by its reference, in whatever session is current: finished, it gives
// the task's outcome; still running, it is waited for again. The task is
// never started twice.
func waitTask(ctx context.Context, c *vim25.Client, ref types.ManagedObjectReference) (types.AnyType, error) {
	for resumes := 0; ; resumes++ {
		info, err := object.NewTask(c, ref).WaitForResult(ctx)
		if err == nil && (info == nil || info.State != types.TaskInfoStateSuccess) {
			// govmomi answers a wait cut short by a cancelled ctx with
			// CancelWaitForUpdates' result: no error, and the task's last
			// state (queued or running). That is not a finished task.
			err = fmt.Errorf("waiting for task %s: %w", ref.Value, context.Cause(ctx))
			if ctx.Err() == nil {
				err = fmt.Errorf("task %s: the wait ended in state %v", ref.Value, taskState(info))
			}
		}
		if err == nil {
			return info.Result, nil
		}
		var te task.Error
		if errors.As(err, &te) || ctx.Err() != nil || resumes == maxWaitResumes {
			return nil, err
		}
		var mt mo.Task
		if rerr := property.DefaultCollector(c).RetrieveOne(ctx, ref, []string{"info"}, &mt); rerr != nil {
			return nil, fmt.Errorf("waiting for task %s: %w (and reading its state: %v)", ref.Value, err, rerr)
		}
		switch mt.Info.State {
		case types.TaskInfoStateSuccess:
			return mt.Info.Result, nil
		case types.TaskInfoStateError:
			if mt.Info.Error == nil {
				return nil, fmt.Errorf("task %s failed without a fault", ref.Value)
			}
			return nil, task.Error{LocalizedMethodFault: mt.Info.Error, Description: mt.Info.Description}
		}
		// queued or running: wait again in this session
	}
}

// taskState is info's state, "unknown" without info.
func taskState(info *types.TaskInfo) types.TaskInfoState {
	if info == nil {
		return "unknown"
	}
	return info.State
}
