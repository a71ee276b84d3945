// Every workflow the workers register.
export { pipelineWorkflow, progressQuery } from './pipeline';
