import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

/**
 * The README's TypeScript examples compile against the SDK as built: each ```ts block becomes the body of an
 * async function (its imports hoisted), with the few names the prose leaves to the reader declared.
 */
const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const README = readFileSync(join(PACKAGE_DIR, 'README.md'), 'utf8')

/** The names examples use without defining them, as the surrounding prose describes them. */
const PRELUDE = `import type { ChatMessage } from '@lull/proto'
declare const coordinator: string
declare const model: string
declare const messages: ChatMessage[]
declare const client: LullClient
`

function exampleBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] as string)
}

/** One module from all blocks: their imports merged per module (named or default), each body in a function. */
function asModule(blocks: string[]): string {
  const named = new Map<string, Set<string>>([['@lull/client-sdk', new Set(['LullClient'])]])
  const defaults = new Map<string, string>()
  const bodies = blocks.map((block, index) => {
    const lines = block.split('\n')
    for (const line of lines) {
      const namedImport = /^import \{ (.+) \} from '(.+)'$/.exec(line)
      const defaultImport = /^import (\w+) from '(.+)'$/.exec(line)
      if (namedImport?.[1] !== undefined && namedImport[2] !== undefined) {
        const names = named.get(namedImport[2]) ?? new Set<string>()
        for (const name of namedImport[1].split(',')) names.add(name.trim())
        named.set(namedImport[2], names)
      } else if (defaultImport?.[1] !== undefined && defaultImport[2] !== undefined) {
        defaults.set(defaultImport[2], defaultImport[1])
      } else if (line.startsWith('import ')) {
        throw new Error(`an import the check does not understand: ${line}`)
      }
    }
    const body = lines.filter((line) => !line.startsWith('import ')).join('\n')
    return `export async function example${index}(): Promise<void> {\n${body}\n}\n`
  })
  const imports = [
    ...[...named].map(([from, names]) => `import { ${[...names].join(', ')} } from '${from}'`),
    ...[...defaults].map(([from, name]) => `import ${name} from '${from}'`),
  ]
  return `${imports.join('\n')}\n${PRELUDE}\n${bodies.join('\n')}`
}

describe('client-sdk/README.md', () => {
  it('has TypeScript examples that compile against the SDK', () => {
    const blocks = exampleBlocks(README)
    expect(blocks.length).toBeGreaterThanOrEqual(6)
    const fileName = join(PACKAGE_DIR, 'src', '__readme-examples__.ts')
    const source = asModule(blocks)
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2023.d.ts', 'lib.es2024.promise.d.ts', 'lib.esnext.disposable.d.ts'],
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
    }
    const host = ts.createCompilerHost(options)
    const readFile = host.readFile.bind(host)
    const getSourceFile = host.getSourceFile.bind(host)
    host.fileExists = (name) => name === fileName || ts.sys.fileExists(name)
    host.readFile = (name) => (name === fileName ? source : readFile(name))
    host.getSourceFile = (name, languageVersion, ...rest) =>
      name === fileName
        ? ts.createSourceFile(name, source, languageVersion, true)
        : getSourceFile(name, languageVersion, ...rest)
    const program = ts.createProgram([fileName], options, host)
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .filter((diagnostic) => diagnostic.file?.fileName === fileName)
      .map((diagnostic) => {
        const line =
          diagnostic.file && diagnostic.start !== undefined
            ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line
            : -1
        const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
        return `${text}\n    at: ${source.split('\n')[line]?.trim()}`
      })
    expect(diagnostics).toEqual([])
  }, 60_000)
})
